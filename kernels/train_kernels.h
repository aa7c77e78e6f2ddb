// Launchers of the LoRA trainer's kernels (train_ops.cu). Each is the device twin of a float32 CPU function of
// engine/train (backward_ops.h, lora_model.cpp's attention), which finite differences check
// in tests/train; tests/gpu/test_cuda_train_ops.cpp holds each kernel to its twin. Conventions as in kernels.h:
// plain pointers and a stream, row-major, every launcher enqueues work and returns at once. Activations,
// gradients and LoRA weights are fp32; the frozen bf16 weights go through cuBLAS (blas.h).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/kernels.h"

namespace mwb::cuda {

// RMSNorm -----------------------------------------------------------------------------------------------------
// y[r] = x[r] · inv[r] · weight with inv[r] = 1/√(mean(x[r]²) + eps), saved for the backward pass; the sum of
// squares in fp64, as train::rms_norm_forward. Rows of x lie x_stride apart (MLA's latent is the front of each
// kv_a row); y [rows, width] and inv [rows] are contiguous.
void rms_norm_forward(const float* x, int64_t x_stride, const float* weight, int64_t rows, int64_t width, float eps, float* y,
                      float* inv, cudaStream_t stream);
// dx[r] += the gradient of rms_norm_forward's input given dy [rows, width] (train::rms_norm_backward_add); rows of
// dx lie x_stride apart, like x's.
void rms_norm_backward_add(const float* x, int64_t x_stride, const float* inv, const float* weight, const float* dy, int64_t rows,
                           int64_t width, float* dx, cudaStream_t stream);

// SwiGLU ------------------------------------------------------------------------------------------------------
// act = silu(gate) · up, and back: d_gate, d_up from d_act (train::swiglu_forward / swiglu_backward).
void swiglu_forward(const float* gate, const float* up, int64_t count, float* act, cudaStream_t stream);
void swiglu_backward(const float* gate, const float* up, const float* d_act, int64_t count, float* d_gate, float* d_up,
                     cudaStream_t stream);

// RoPE --------------------------------------------------------------------------------------------------------
// RopeTable::apply on fp32 heads in place: the first rotary_dim values of each of `heads` heads (head_stride
// apart, rows row_stride apart) rotated at each row's position. rope_backward is its transpose
// (RopeTable::apply_transposed), which carries a gradient back through the rotation.
void rope_forward(float* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                  const RopeParams& rope, cudaStream_t stream);
void rope_backward(float* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                   const RopeParams& rope, cudaStream_t stream);

// Attention softmax -------------------------------------------------------------------------------------------
// scores [heads, tokens, tokens], already scaled → probabilities, query i seeing keys ≤ i, zero above the
// diagonal (which is not read); cpu::softmax per row, as lora_model's attention. May run in place.
void causal_softmax_forward(const float* scores, int64_t heads, int64_t tokens, float* probabilities, cudaStream_t stream);
// d_scores = P ⊙ (dP − rowsum(P ⊙ dP)) · scale below the diagonal, 0 above (dP is not read there): the gradient of
// the unscaled products q·k, as lora_model's attention backward forms it. May run in place on d_probabilities.
void causal_softmax_backward(const float* probabilities, const float* d_probabilities, int64_t heads, int64_t tokens, float scale,
                             float* d_scores, cudaStream_t stream);

// Cross-entropy -----------------------------------------------------------------------------------------------
// transformers' ForCausalLMLoss on logits [rows · tokens, vocab] with labels [rows · tokens]: position t of a row
// predicts that row's labels[t + 1], kIgnoredLabel (-100) and each row's last position predict nothing.
// position_losses[rows · tokens] receives each position's cross-entropy (0 where nothing is predicted) and
// row_losses[rows] their sum in position order, as row_loss returns it: fp64, the exponentials' sum per position
// accumulated in fp64 from fp32 terms. d_logits, when not null, receives gradient_scale · (softmax − one-hot) on
// counted positions and 0 elsewhere. A label outside [0, vocab) gives its position a NaN loss and a zero gradient
// (the host checks labels first, as row_loss does).
void causal_lm_loss(const float* logits, const int64_t* labels, int64_t rows, int64_t tokens, int64_t vocab, float gradient_scale,
                    float* d_logits, double* position_losses, double* row_losses, cudaStream_t stream);

// Router ------------------------------------------------------------------------------------------------------
// For each of `rows` tokens: from the gradient of its top_k expert weights d_weights [rows, top_k] to the gradient
// of its router logits d_logits [rows, experts], given its scores [rows, experts] (after the sigmoid or softmax)
// and the experts it chose [rows, top_k] (train::router_backward). Reads experts, top_k, sigmoid, normalise and
// scaling of `router`.
void router_backward(const float* scores, const int32_t* chosen, const float* d_weights, int64_t rows, const RouterParams& router,
                     float* d_logits, cudaStream_t stream);

// Rows (train_rows.cu) -------------------------------------------------------------------------------------------
// out = x rounded to bf16, the input of a GEMM with frozen bf16 weights.
void to_bf16(const float* x, int64_t count, bf16* out, cudaStream_t stream);
// x += y.
void add_into(float* x, const float* y, int64_t count, cudaStream_t stream);
// out[r][0, width) = (or +=) in[r][0, width), rows in_stride and out_stride apart.
void copy_columns(const float* in, int64_t in_stride, int64_t rows, int64_t width, float* out, int64_t out_stride, bool accumulate,
                  cudaStream_t stream);
// out[i] = Σ_h per_head[h · count + i], in head order.
void sum_heads(const float* per_head, int64_t heads, int64_t count, float* out, cudaStream_t stream);
// out[i] = scales[i] · in[rows[i]] (scales may be null: 1).
void gather_rows_fp32(const float* in, int64_t width, const int32_t* rows, const float* scales, int64_t count, float* out,
                      cudaStream_t stream);
// out[rows[i]] += scales[i] · in[i] (scales may be null: 1); the rows of one call must be distinct.
void scatter_add_rows(const float* in, int64_t width, const int32_t* rows, const float* scales, int64_t count, float* out,
                      cudaStream_t stream);
// out[out_index[i]] = a[a_rows[i]] · b[i] (dot products of rows of `width`).
void row_dots(const float* a, const int32_t* a_rows, const float* b, int64_t width, int64_t count, float* out, const int32_t* out_index,
              cudaStream_t stream);
// y[r] += bias for y [rows, width].
void add_bias_rows(float* y, int64_t rows, int64_t width, const float* bias, cudaStream_t stream);
// PEFT's lora_dropout on an adapter's input with the CPU trainer's mask (a hash of the row's seed, the module's
// index in the adapter and the element): out = x / (1 − rate) where kept, 0 elsewhere; and its backward,
// dx += d / (1 − rate) where kept.
void lora_dropout(const float* x, int64_t count, uint64_t seed, int64_t module, double rate, float* out, cudaStream_t stream);
void lora_dropout_backward_add(const float* d, int64_t count, uint64_t seed, int64_t module, double rate, float* dx, cudaStream_t stream);

}  // namespace mwb::cuda
