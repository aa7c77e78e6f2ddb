#include "engine/runtime/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>

namespace mwb::cpu {

float dot(const float* a, const float* b, int64_t n) {
    // Eight independent sums let the compiler vectorise without reassociating a single accumulator.
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

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

void linear(ThreadPool& pool, const LinearWeight& weight, const float* bias, const float* x, int64_t rows, float* y) {
    const int64_t in = weight.in_features, out = weight.out_features;
    constexpr int64_t kWeightRows = 16;
    const int64_t blocks = (out + kWeightRows - 1) / kWeightRows;
    pool.parallel_for(blocks, [&](int64_t first, int64_t last) {
        thread_local std::vector<float> decoded;
        decoded.resize(size_t(kWeightRows * in));
        for (int64_t block = first; block < last; ++block) {
            const int64_t r0 = block * kWeightRows, count = std::min(kWeightRows, out - r0);
            decode_rows(weight, r0, count, decoded.data());
            for (int64_t t = 0; t < rows; ++t) {
                const float* xt = x + t * in;
                float* yt = y + t * out + r0;
                for (int64_t j = 0; j < count; ++j) yt[j] = dot(xt, decoded.data() + j * in, in) + (bias ? bias[r0 + j] : 0.0f);
            }
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
