// The float32 building blocks of the CPU backend. Weights stay in their stored dtype and are converted a few
// rows at a time, so a bf16 model never occupies float32 memory.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/blocks/linear.h"
#include "engine/model/blocks/low_rank.h"
#include "engine/runtime/cpu/thread_pool.h"

namespace mwb::cpu {

float dot(const float* a, const float* b, int64_t n);

// Converts rows [row_begin, row_begin + row_count) of a weight to float32, applying FP8 block scales.
void decode_rows(const LinearWeight& weight, int64_t row_begin, int64_t row_count, float* out);
std::vector<float> decode_vector(const TensorView& tensor);

// y[rows, out] = x[rows, in] · Wᵀ + bias. Each row's result is bit-for-bit the same whatever `rows` is and
// wherever the row sits, so batching requests together never changes their tokens.
void linear(ThreadPool& pool, const LinearWeight& weight, const float* bias, const float* x, int64_t rows, float* y);

// y[rows, out] += scale · (x[rows, in] · Aᵀ) · Bᵀ: a LoRA adapter's part of a linear layer.
void add_low_rank(ThreadPool& pool, const LowRankDelta& delta, const float* x, int64_t rows, int64_t in, int64_t out, float* y);

// y = x / sqrt(mean(x²) + eps) · weight, row by row (x and y may alias).
void rms_norm(const float* x, const float* weight, int64_t rows, int64_t width, float eps, float* y, int64_t x_stride = 0,
              int64_t y_stride = 0);

// y = (x − mean(x)) / sqrt(var(x) + eps) · weight + bias, row by row, with the biased variance (x and y may alias).
void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t width, float eps, float* y);

// In place: GELU with tanh (torch's approximate="tanh", gelu_pytorch_tanh) or exact with erf (nn.GELU()).
void gelu_tanh(float* values, int64_t count);
void gelu_erf(float* values, int64_t count);

// gate ← silu(gate) · up
void silu_mul(float* gate, const float* up, int64_t count);

// In-place softmax of n values.
void softmax(float* values, int64_t n);

}  // namespace mwb::cpu
