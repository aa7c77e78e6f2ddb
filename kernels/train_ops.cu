// The LoRA trainer's fp32 ops on the GPU, each the device twin of a CPU function of engine/train: RMSNorm and
// SwiGLU forward and backward, RoPE and its transpose, the causal attention softmax and its backward, the causal
// LM cross-entropy with its gradient, and the router's backward.
// Each kernel repeats its twin's per-element arithmetic in the same order. What differs: block reductions sum in another order (in fp64 where the twin sums in
// fp64), and the cross-entropy's exponentials are fp32 where the CPU's are fp64 (summed in fp64 on both sides).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/train/lora_model.h"
#include "kernels/device_math.cuh"
#include "kernels/train_kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRopeThreads = 128;
constexpr int kRouterWarps = kThreads / 32;

// block_sum of device_math.cuh in fp64, for the sums the CPU twins accumulate in double.
__device__ __forceinline__ double block_sum_double(double value, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
    __syncthreads();
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : 0.0;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// One block per row.
__global__ void rms_norm_forward_kernel(const float* x, int64_t x_stride, const float* weight, int64_t width, float eps, float* y,
                                        float* inv) {
    __shared__ double scratch[32];
    const int64_t row = blockIdx.x;
    const float* in = x + row * x_stride;
    double squares = 0.0;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) squares += double(in[i]) * in[i];
    squares = block_sum_double(squares, scratch);
    // 1/sqrtf rather than rsqrtf: the saved factor must be the CPU's, and rsqrtf is not correctly rounded.
    const float factor = 1.0f / sqrtf(float(squares / double(width)) + eps);
    if (threadIdx.x == 0) inv[row] = factor;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) y[row * width + i] = in[i] * factor * weight[i];
}

// y_i = x_i·f·w_i, f = (mean(x²) + eps)^(-1/2): dx_i = f·g_i − x_i·f³·Σ(g·x)/width with g = dy·w.
__global__ void rms_norm_backward_add_kernel(const float* x, int64_t x_stride, const float* inv, const float* weight, const float* dy,
                                             int64_t width, float* dx) {
    __shared__ double scratch[32];
    const int64_t row = blockIdx.x;
    const float* in = x + row * x_stride;
    const float* d = dy + row * width;
    const float f = inv[row];
    double dot = 0.0;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) dot += double(d[i]) * weight[i] * in[i];
    dot = block_sum_double(dot, scratch);
    const float correction = float(dot / double(width)) * f * f * f;
    float* out = dx + row * x_stride;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) out[i] += f * d[i] * weight[i] - in[i] * correction;
}

__global__ void swiglu_forward_kernel(const float* gate, const float* up, int64_t count, float* act) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i < count) act[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

__global__ void swiglu_backward_kernel(const float* gate, const float* up, const float* d_act, int64_t count, float* d_gate, float* d_up) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i >= count) return;
    const float s = sigmoid(gate[i]);
    d_up[i] = d_act[i] * gate[i] * s;
    d_gate[i] = d_act[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
}

// One block per row; direction −1 rotates backwards (the transpose), as RopeTable::rotate does.
__global__ void rope_kernel(float* data, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                            const float* inverse_frequency, int64_t half, bool interleaved, float attention_factor, float direction) {
    const int64_t row = blockIdx.x;
    const float position = float(positions[row]);
    for (int64_t task = threadIdx.x; task < heads * half; task += kRopeThreads) {
        const int64_t head = task / half, i = task % half;
        float s, c;
        sincosf(position * inverse_frequency[i], &s, &c);
        c *= attention_factor;
        s = direction * s * attention_factor;
        float* h = data + row * row_stride + head * head_stride;
        float& a = interleaved ? h[2 * i] : h[i];
        float& b = interleaved ? h[2 * i + 1] : h[i + half];
        const float x = a, y = b;
        a = x * c - y * s;
        b = y * c + x * s;
    }
}

// One block per (head, query row). Each thread writes only the entries it read, after the reductions' barriers,
// so the softmax may run in place.
__global__ void causal_softmax_forward_kernel(const float* scores, int64_t tokens, float* probabilities) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x;
    const int64_t visible = row % tokens + 1;
    const float* in = scores + row * tokens;
    float* out = probabilities + row * tokens;
    float peak = -INFINITY;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) peak = fmaxf(peak, in[t]);
    peak = block_max(peak, scratch);
    float total = 0.0f;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) total += expf(in[t] - peak);
    const float inverse = 1.0f / block_sum(total, scratch);
    for (int64_t t = threadIdx.x; t < tokens; t += kThreads) out[t] = t < visible ? expf(in[t] - peak) * inverse : 0.0f;
}

// One block per (head, query row); in place as the forward.
__global__ void causal_softmax_backward_kernel(const float* probabilities, const float* d_probabilities, int64_t tokens, float scale,
                                               float* d_scores) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x;
    const int64_t visible = row % tokens + 1;
    const float* p = probabilities + row * tokens;
    const float* d_p = d_probabilities + row * tokens;
    float* out = d_scores + row * tokens;
    float weighted = 0.0f;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) weighted += p[t] * d_p[t];
    const float row_sum = block_sum(weighted, scratch);
    for (int64_t t = threadIdx.x; t < tokens; t += kThreads) out[t] = t < visible ? p[t] * (d_p[t] - row_sum) * scale : 0.0f;
}

// One block per position of logits [rows · tokens, vocab]: its loss and, when asked, its gradient.
__global__ void causal_lm_loss_kernel(const float* logits, const int64_t* labels, int64_t tokens, int64_t vocab, float gradient_scale,
                                      float* d_logits, double* position_losses) {
    __shared__ float scratch[32];
    __shared__ double scratch_double[32];
    const int64_t position = blockIdx.x;
    const int64_t label = position % tokens + 1 < tokens ? labels[position + 1] : train::kIgnoredLabel;
    const float* row = logits + position * vocab;
    float* d = d_logits ? d_logits + position * vocab : nullptr;
    if (label == train::kIgnoredLabel || label < 0 || label >= vocab) {
        if (d)
            for (int64_t v = threadIdx.x; v < vocab; v += kThreads) d[v] = 0.0f;
        if (threadIdx.x == 0) position_losses[position] = label == train::kIgnoredLabel ? 0.0 : double(NAN);
        return;
    }
    float peak = -INFINITY;
    for (int64_t v = threadIdx.x; v < vocab; v += kThreads) peak = fmaxf(peak, row[v]);
    peak = block_max(peak, scratch);
    double total = 0.0;
    for (int64_t v = threadIdx.x; v < vocab; v += kThreads) total += double(expf(row[v] - peak));
    total = block_sum_double(total, scratch_double);
    if (threadIdx.x == 0) position_losses[position] = log(total) + double(peak) - double(row[label]);
    if (!d) return;
    for (int64_t v = threadIdx.x; v < vocab; v += kThreads) {
        float value = float(double(expf(row[v] - peak)) / total) * gradient_scale;
        if (v == label) value -= gradient_scale;
        d[v] = value;
    }
}

// One thread per row: its positions' losses in order, as row_loss accumulates them.
__global__ void row_losses_kernel(const double* position_losses, int64_t rows, int64_t tokens, double* row_losses) {
    const int64_t row = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (row >= rows) return;
    double loss = 0.0;
    for (int64_t t = 0; t < tokens; ++t) loss += position_losses[row * tokens + t];
    row_losses[row] = loss;
}

// The gradient of one chosen expert's score: back through the scaling and the normalisation
// w_i = s_i / (Σ s + 1e-20) (denominator and weighted = Σ d_w·s are of the chosen).
__device__ __forceinline__ float chosen_score_gradient(float d_weight, bool normalised, float denominator, float weighted, float scaling) {
    return normalised ? scaling * (d_weight / denominator - weighted / (denominator * denominator)) : scaling * d_weight;
}

// One warp per token; every lane forms the token's few scalars itself, then the lanes share its experts.
__global__ void router_backward_kernel(const float* scores, const int32_t* chosen, const float* d_weights, int64_t rows, RouterParams p,
                                       float* d_logits) {
    const int lane = threadIdx.x & 31;
    const int64_t token = int64_t(blockIdx.x) * kRouterWarps + (threadIdx.x >> 5);
    if (token >= rows) return;
    const int n = int(p.experts), k = int(p.top_k);
    const float* score = scores + token * n;
    const int32_t* experts = chosen + token * k;
    const float* d_weight = d_weights + token * k;
    float* out = d_logits + token * n;
    // The normalisation's sums over the chosen, in slot order as train::router_backward sums them.
    const bool normalised = p.normalise && k > 1;
    float denominator = 0.0f, weighted = 0.0f;
    if (normalised) {
        float total = 0.0f;
        for (int i = 0; i < k; ++i) total += score[experts[i]];
        denominator = total + 1e-20f;
        for (int i = 0; i < k; ++i) weighted += d_weight[i] * score[experts[i]];
    }
    // Softmax: Σ_e d_score·score, in expert order as the CPU sums it (the others add zeros).
    float mean = 0.0f;
    if (!p.sigmoid)
        for (int previous = -1, m = 0; m < k; ++m) {
            int next = n, slot = 0;
            for (int i = 0; i < k; ++i)
                if (experts[i] > previous && experts[i] < next) next = experts[i], slot = i;
            if (next == n) break;
            mean += chosen_score_gradient(d_weight[slot], normalised, denominator, weighted, p.scaling) * score[next];
            previous = next;
        }
    for (int e = lane; e < n; e += 32) {
        float d_score = 0.0f;
        for (int i = 0; i < k; ++i)
            if (experts[i] == e) d_score = chosen_score_gradient(d_weight[i], normalised, denominator, weighted, p.scaling);
        out[e] = p.sigmoid ? d_score * score[e] * (1.0f - score[e]) : score[e] * (d_score - mean);
    }
}

void launch_rope(float* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                 const RopeParams& rope, float direction, cudaStream_t stream) {
    if (rows <= 0 || heads <= 0 || rope.rotary_dim < 2) return;
    MWB_LAUNCH(rope_kernel, unsigned(rows), kRopeThreads, 0, stream)(data, row_stride, heads, head_stride, positions, rope.inverse_frequency,
                                                                     rope.rotary_dim / 2, rope.interleaved, rope.attention_factor, direction);
}

}  // namespace

void rms_norm_forward(const float* x, int64_t x_stride, const float* weight, int64_t rows, int64_t width, float eps, float* y,
                      float* inv, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(rms_norm_forward_kernel, unsigned(rows), kThreads, 0, stream)(x, x_stride, weight, width, eps, y, inv);
}

void rms_norm_backward_add(const float* x, int64_t x_stride, const float* inv, const float* weight, const float* dy, int64_t rows,
                           int64_t width, float* dx, cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(rms_norm_backward_add_kernel, unsigned(rows), kThreads, 0, stream)(x, x_stride, inv, weight, dy, width, dx);
}

void swiglu_forward(const float* gate, const float* up, int64_t count, float* act, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(swiglu_forward_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(gate, up, count, act);
}

void swiglu_backward(const float* gate, const float* up, const float* d_act, int64_t count, float* d_gate, float* d_up,
                     cudaStream_t stream) {
    if (count > 0)
        MWB_LAUNCH(swiglu_backward_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(gate, up, d_act, count, d_gate, d_up);
}

void rope_forward(float* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                  const RopeParams& rope, cudaStream_t stream) {
    launch_rope(data, rows, row_stride, heads, head_stride, positions, rope, 1.0f, stream);
}

void rope_backward(float* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                   const RopeParams& rope, cudaStream_t stream) {
    launch_rope(data, rows, row_stride, heads, head_stride, positions, rope, -1.0f, stream);
}

void causal_softmax_forward(const float* scores, int64_t heads, int64_t tokens, float* probabilities, cudaStream_t stream) {
    if (heads * tokens > 0)
        MWB_LAUNCH(causal_softmax_forward_kernel, unsigned(heads * tokens), kThreads, 0, stream)(scores, tokens, probabilities);
}

void causal_softmax_backward(const float* probabilities, const float* d_probabilities, int64_t heads, int64_t tokens, float scale,
                             float* d_scores, cudaStream_t stream) {
    if (heads * tokens > 0)
        MWB_LAUNCH(causal_softmax_backward_kernel, unsigned(heads * tokens), kThreads, 0, stream)(probabilities, d_probabilities, tokens,
                                                                                                  scale, d_scores);
}

void causal_lm_loss(const float* logits, const int64_t* labels, int64_t rows, int64_t tokens, int64_t vocab, float gradient_scale,
                    float* d_logits, double* position_losses, double* row_losses, cudaStream_t stream) {
    if (rows <= 0 || tokens <= 0) return;
    MWB_LAUNCH(causal_lm_loss_kernel, unsigned(rows * tokens), kThreads, 0, stream)(logits, labels, tokens, vocab, gradient_scale, d_logits,
                                                                                    position_losses);
    MWB_LAUNCH(row_losses_kernel, blocks_for(rows, kThreads), kThreads, 0, stream)(position_losses, rows, tokens, row_losses);
}

void router_backward(const float* scores, const int32_t* chosen, const float* d_weights, int64_t rows, const RouterParams& router,
                     float* d_logits, cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(router_backward_kernel, blocks_for(rows, kRouterWarps), kThreads, 0, stream)(scores, chosen, d_weights, rows, router,
                                                                                                d_logits);
}

}  // namespace mwb::cuda
