// Float32 building blocks of training on the CPU: the three matrix products a linear layer needs forwards and
// backwards, and the backward passes of RMSNorm, SwiGLU and the router's weights. Each is written out plainly:
// this path is the reference the CUDA trainer is tested against.
#pragma once

#include <cstdint>

#include "engine/model/config.h"
#include "engine/runtime/cpu/thread_pool.h"

namespace mwb::train {

// y[m, n] = x[m, k] · w[n, k]ᵀ
void matmul_nt(ThreadPool& pool, const float* x, const float* w, int64_t m, int64_t k, int64_t n, float* y);
// dx[m, k] += dy[m, n] · w[n, k]
void matmul_nn_add(ThreadPool& pool, const float* dy, const float* w, int64_t m, int64_t n, int64_t k, float* dx);
// dw[n, k] += scale · dy[m, n]ᵀ · x[m, k]
void matmul_tn_add(ThreadPool& pool, const float* dy, const float* x, int64_t m, int64_t n, int64_t k, float scale, float* dw);

// y = x · inv · w with inv = 1/√(mean(x²) + eps), per row of `width`; `inv` receives each row's factor.
void rms_norm_forward(const float* x, const float* w, int64_t rows, int64_t width, float eps, float* y, float* inv);
// dx (+=) the gradient of rms_norm_forward's input given dy.
void rms_norm_backward_add(const float* x, const float* inv, const float* w, const float* dy, int64_t rows, int64_t width, float* dx);

// act = silu(gate) · up, and back: d_gate, d_up from d_act.
void swiglu_forward(const float* gate, const float* up, int64_t count, float* act);
void swiglu_backward(const float* gate, const float* up, const float* d_act, int64_t count, float* d_gate, float* d_up);

// transformers' ForCausalLMLoss over one row's logits [tokens, vocab]: position t predicts labels[t + 1], and
// `ignored` labels (-100) predict nothing. Returns the summed cross-entropy; with d_logits (zero-filled by the
// caller) also gradient_scale · (softmax − one-hot) on the counted positions.
double causal_lm_loss(const float* logits, const int64_t* labels, int64_t tokens, int64_t vocab, int64_t ignored, float gradient_scale,
                      float* d_logits);

// The router of one token: from the gradient of its top-k expert weights to the gradient of its logits, for
// the weights route_token() computes (scores by sigmoid or softmax, optionally normalised over the chosen,
// times routed_scaling_factor). The choice itself is not differentiated, as in transformers.
void router_backward(const MoeConfig& config, const float* scores, const int32_t* chosen, const float* d_weights, float* d_logits);

}  // namespace mwb::train
