#include "engine/runtime/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MWB_HAVE_AVX2_PATH 1
#endif

namespace mwb::cpu {

namespace {

inline float widen(float value) { return value; }
inline float widen(uint16_t bf16) { return bf16_to_float(bf16); }

template <class Weight>
float dot_portable(const float* x, const Weight* w, int64_t n) {
    // Eight independent sums let the compiler vectorise without reassociating a single accumulator.
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += x[i + k] * widen(w[i + k]);
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) sum += x[i] * widen(w[i]);
    return sum;
}

#ifdef MWB_HAVE_AVX2_PATH
// The release build targets baseline x86-64; these run where the CPU has AVX2 and FMA (checked at start-up).
//
// Every kernel below sums a row in the same order (two 8-lane accumulators over 16 values a step, then the
// same horizontal sum, then an FMA per leftover value), so that a token's output does not depend on how many
// other tokens share its linear layer or where it sits among them: a request gives the same tokens whether it
// runs alone or batched with others.
__attribute__((target("avx2,fma"))) float horizontal_sum(__m256 v) {
    const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 quad = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
    return _mm_cvtss_f32(_mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1)));
}

__attribute__((target("avx2,fma"))) float fused_multiply_add(float a, float b, float c) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i) sum = fused_multiply_add(a[i], b[i], sum);
    return sum;
}

// bf16 weights widened in registers (a bf16 is the top half of a float32), so decode reads 2 bytes a weight.
__attribute__((target("avx2,fma"))) __m256 load_bf16(const uint16_t* w) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

__attribute__((target("avx2,fma"))) float dot_bf16_avx2(const float* x, const uint16_t* w, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), load_bf16(w + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), load_bf16(w + i + 8), acc1);
    }
    float sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i) sum = fused_multiply_add(x[i], bf16_to_float(w[i]), sum);
    return sum;
}

// Two token rows against two weight rows: each load feeds two FMAs, which is what prefill needs.
__attribute__((target("avx2,fma"))) void tile_2x2_avx2(const float* x, int64_t x_stride, const float* w, int64_t w_stride,
                                                       int64_t n, float* out) {
    __m256 acc[2][2][2];
    for (auto& row : acc)
        for (auto& pair : row) pair[0] = pair[1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int half = 0; half < 2; ++half) {
            const int64_t k = i + half * 8;
            const __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + w_stride + k);
            for (int t = 0; t < 2; ++t) {
                const __m256 xt = _mm256_loadu_ps(x + t * x_stride + k);
                acc[t][0][half] = _mm256_fmadd_ps(xt, w0, acc[t][0][half]);
                acc[t][1][half] = _mm256_fmadd_ps(xt, w1, acc[t][1][half]);
            }
        }
    for (int t = 0; t < 2; ++t)
        for (int j = 0; j < 2; ++j) {
            float sum = horizontal_sum(_mm256_add_ps(acc[t][j][0], acc[t][j][1]));
            for (int64_t k = i; k < n; ++k) sum = fused_multiply_add(x[t * x_stride + k], w[j * w_stride + k], sum);
            out[t * 2 + j] = sum;
        }
}
#endif

void tile_2x2_portable(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t n, float* out) {
    for (int t = 0; t < 2; ++t)
        for (int j = 0; j < 2; ++j) out[t * 2 + j] = dot_portable<float>(x + t * x_stride, w + j * w_stride, n);
}

struct DotKernels {
    float (*dot)(const float*, const float*, int64_t);
    float (*dot_bf16)(const float*, const uint16_t*, int64_t);
    void (*tile_2x2)(const float*, int64_t, const float*, int64_t, int64_t, float*);
};

const DotKernels& kernels() {
    static const DotKernels chosen = [] {
#ifdef MWB_HAVE_AVX2_PATH
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return DotKernels{dot_avx2, dot_bf16_avx2, tile_2x2_avx2};
#endif
        return DotKernels{dot_portable<float>, dot_portable<uint16_t>, tile_2x2_portable};
    }();
    return chosen;
}

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return kernels().dot(a, b, n); }

void decode_rows(const LinearWeight& weight, int64_t row_begin, int64_t row_count, float* out) {
    const int64_t in = weight.in_features;
    const size_t element = dtype_size(weight.weight.dtype);
    convert_to_float(weight.weight.dtype, weight.weight.data + size_t(row_begin * in) * element, out, size_t(row_count * in));
    if (!weight.block_scale) return;
    const auto* scales = reinterpret_cast<const float*>(weight.block_scale->data);
    const int64_t scale_cols = weight.block_scale->shape[1];
    for (int64_t r = 0; r < row_count; ++r) {
        const float* scale_row = scales + ((row_begin + r) / weight.block_rows) * scale_cols;
        float* row = out + r * in;
        for (int64_t c = 0; c < in; ++c) row[c] *= scale_row[c / weight.block_cols];
    }
}

std::vector<float> decode_vector(const TensorView& tensor) {
    std::vector<float> values(size_t(tensor.numel()));
    convert_to_float(tensor.dtype, tensor.data, values.data(), values.size());
    return values;
}

void add_low_rank(ThreadPool& pool, const LowRankDelta& delta, const float* x, int64_t rows, int64_t in, int64_t out, float* y) {
    const int64_t r = delta.rank;
    std::vector<float> u(size_t(rows * r));
    for (int64_t t = 0; t < rows; ++t)
        for (int64_t k = 0; k < r; ++k) u[size_t(t * r + k)] = delta.scale * dot(x + t * in, delta.a.data() + k * in, in);
    pool.parallel_for(out, [&](int64_t first, int64_t last) {
        for (int64_t o = first; o < last; ++o)
            for (int64_t t = 0; t < rows; ++t) y[t * out + o] += dot(u.data() + t * r, delta.b.data() + o * r, r);
    });
}

void linear(ThreadPool& pool, const LinearWeight& weight, const float* bias, const float* x, int64_t rows, float* y) {
    const int64_t in = weight.in_features, out = weight.out_features;
    // A few tokens (decode): read bf16 weights once, straight into the dot product. Many tokens (prefill):
    // convert a block of weight rows once and reuse it for every token.
    constexpr int64_t kFusedMaxRows = 4;
    if (rows <= kFusedMaxRows && weight.weight.dtype == DType::BF16) {
        const auto* w = reinterpret_cast<const uint16_t*>(weight.weight.data);
        const auto dot_bf16 = kernels().dot_bf16;
        pool.parallel_for(out, [&](int64_t first, int64_t last) {
            for (int64_t o = first; o < last; ++o)
                for (int64_t t = 0; t < rows; ++t)
                    y[t * out + o] = dot_bf16(x + t * in, w + o * in, in) + (bias ? bias[o] : 0.0f);
        });
        return;
    }
    constexpr int64_t kWeightRows = 16;
    const int64_t blocks = (out + kWeightRows - 1) / kWeightRows;
    const auto tile_2x2 = kernels().tile_2x2;
    pool.parallel_for(blocks, [&](int64_t first, int64_t last) {
        thread_local std::vector<float> decoded;
        decoded.resize(size_t(kWeightRows * in));
        float tile[4];
        for (int64_t block = first; block < last; ++block) {
            const int64_t r0 = block * kWeightRows, count = std::min(kWeightRows, out - r0);
            decode_rows(weight, r0, count, decoded.data());
            auto finish = [&](int64_t t, int64_t j, float sum) { y[t * out + r0 + j] = sum + (bias ? bias[r0 + j] : 0.0f); };
            int64_t t = 0;
            for (; t + 2 <= rows; t += 2) {
                int64_t j = 0;
                for (; j + 2 <= count; j += 2) {
                    tile_2x2(x + t * in, in, decoded.data() + j * in, in, in, tile);
                    for (int a = 0; a < 2; ++a)
                        for (int b = 0; b < 2; ++b) finish(t + a, j + b, tile[a * 2 + b]);
                }
                for (; j < count; ++j)
                    for (int a = 0; a < 2; ++a) finish(t + a, j, dot(x + (t + a) * in, decoded.data() + j * in, in));
            }
            for (; t < rows; ++t)
                for (int64_t j = 0; j < count; ++j) finish(t, j, dot(x + t * in, decoded.data() + j * in, in));
        }
    });
}

void rms_norm(const float* x, const float* weight, int64_t rows, int64_t width, float eps, float* y, int64_t x_stride,
              int64_t y_stride) {
    if (!x_stride) x_stride = width;
    if (!y_stride) y_stride = width;
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * x_stride;
        float* yr = y + r * y_stride;
        float sum = 0;
        for (int64_t i = 0; i < width; ++i) sum += xr[i] * xr[i];
        const float inverse = 1.0f / std::sqrt(sum / float(width) + eps);
        for (int64_t i = 0; i < width; ++i) yr[i] = weight[i] * (xr[i] * inverse);
    }
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t width, float eps, float* y) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * width;
        float* yr = y + r * width;
        double sum = 0;
        for (int64_t i = 0; i < width; ++i) sum += xr[i];
        const float mean = float(sum / double(width));
        double squares = 0;
        for (int64_t i = 0; i < width; ++i) squares += double(xr[i] - mean) * double(xr[i] - mean);
        const float inverse = float(1.0 / std::sqrt(squares / double(width) + double(eps)));
        for (int64_t i = 0; i < width; ++i) yr[i] = (xr[i] - mean) * inverse * weight[i] + bias[i];
    }
}

void gelu_tanh(float* values, int64_t count) {
    const float k = std::sqrt(2.0f / float(M_PI));
    for (int64_t i = 0; i < count; ++i) {
        const float v = values[i];
        values[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
    }
}

void gelu_erf(float* values, int64_t count) {
    for (int64_t i = 0; i < count; ++i) values[i] = 0.5f * values[i] * (1.0f + std::erf(values[i] * float(M_SQRT1_2)));
}

void silu_mul(float* gate, const float* up, int64_t count) {
    for (int64_t i = 0; i < count; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void softmax(float* values, int64_t n) {
    const float peak = *std::max_element(values, values + n);
    float total = 0;
    for (int64_t i = 0; i < n; ++i) total += values[i] = std::exp(values[i] - peak);
    const float inverse = 1.0f / total;
    for (int64_t i = 0; i < n; ++i) values[i] *= inverse;
}

}  // namespace mwb::cpu
