#include "engine/train/backward_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb::train {

void matmul_nt(ThreadPool& pool, const float* x, const float* w, int64_t m, int64_t k, int64_t n, float* y) {
    pool.parallel_for(m, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t j = 0; j < n; ++j) y[r * n + j] = cpu::dot(x + r * k, w + j * k, k);
    });
}

void matmul_nn_add(ThreadPool& pool, const float* dy, const float* w, int64_t m, int64_t n, int64_t k, float* dx) {
    pool.parallel_for(m, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            float* out = dx + r * k;
            for (int64_t j = 0; j < n; ++j) {
                const float g = dy[r * n + j];
                if (g == 0.0f) continue;
                const float* row = w + j * k;
                for (int64_t i = 0; i < k; ++i) out[i] += g * row[i];
            }
        }
    });
}

void matmul_tn_add(ThreadPool& pool, const float* dy, const float* x, int64_t m, int64_t n, int64_t k, float scale, float* dw) {
    pool.parallel_for(n, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
            float* out = dw + j * k;
            for (int64_t r = 0; r < m; ++r) {
                const float g = scale * dy[r * n + j];
                if (g == 0.0f) continue;
                const float* row = x + r * k;
                for (int64_t i = 0; i < k; ++i) out[i] += g * row[i];
            }
        }
    });
}

void rms_norm_forward(const float* x, const float* w, int64_t rows, int64_t width, float eps, float* y, float* inv) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* in = x + r * width;
        double squares = 0;
        for (int64_t i = 0; i < width; ++i) squares += double(in[i]) * in[i];
        const float factor = 1.0f / std::sqrt(float(squares / double(width)) + eps);
        inv[r] = factor;
        for (int64_t i = 0; i < width; ++i) y[r * width + i] = in[i] * factor * w[i];
    }
}

void rms_norm_backward_add(const float* x, const float* inv, const float* w, const float* dy, int64_t rows, int64_t width, float* dx) {
    // y_i = x_i·f·w_i, f = (mean(x²) + eps)^(-1/2): dx_i = f·g_i − x_i·f³·Σ(g·x)/width with g = dy·w.
    for (int64_t r = 0; r < rows; ++r) {
        const float* in = x + r * width;
        const float* d = dy + r * width;
        const float f = inv[r];
        double dot = 0;
        for (int64_t i = 0; i < width; ++i) dot += double(d[i]) * w[i] * in[i];
        const float correction = float(dot / double(width)) * f * f * f;
        for (int64_t i = 0; i < width; ++i) dx[r * width + i] += f * d[i] * w[i] - in[i] * correction;
    }
}

namespace {
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void swiglu_forward(const float* gate, const float* up, int64_t count, float* act) {
    for (int64_t i = 0; i < count; ++i) act[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swiglu_backward(const float* gate, const float* up, const float* d_act, int64_t count, float* d_gate, float* d_up) {
    for (int64_t i = 0; i < count; ++i) {
        const float s = sigmoid(gate[i]);
        d_up[i] = d_act[i] * gate[i] * s;
        d_gate[i] = d_act[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
    }
}

void router_backward(const MoeConfig& config, const float* scores, const int32_t* chosen, const float* d_weights, float* d_logits) {
    const int64_t n = config.n_routed_experts, k = config.experts_per_token;
    const float scaling = float(config.routed_scaling_factor);
    // Back through the scaling and the normalisation w_i = s_i / (Σ s + 1e-20) to the chosen scores.
    std::vector<float> d_scores(size_t(n), 0.0f);
    if (config.norm_topk_prob && k > 1) {
        float total = 0, weighted = 0;
        for (int64_t i = 0; i < k; ++i) total += scores[chosen[i]];
        const float denominator = total + 1e-20f;
        for (int64_t i = 0; i < k; ++i) weighted += d_weights[i] * scores[chosen[i]];
        for (int64_t i = 0; i < k; ++i)
            d_scores[size_t(chosen[i])] = scaling * (d_weights[i] / denominator - weighted / (denominator * denominator));
    } else {
        for (int64_t i = 0; i < k; ++i) d_scores[size_t(chosen[i])] = scaling * d_weights[i];
    }
    // Back through the scoring function to the logits.
    if (config.scoring == ScoringFunction::Sigmoid) {
        for (int64_t e = 0; e < n; ++e) d_logits[e] = d_scores[size_t(e)] * scores[e] * (1.0f - scores[e]);
    } else {
        float mean = 0;
        for (int64_t e = 0; e < n; ++e) mean += d_scores[size_t(e)] * scores[e];
        for (int64_t e = 0; e < n; ++e) d_logits[e] = scores[e] * (d_scores[size_t(e)] - mean);
    }
}

double causal_lm_loss(const float* logits, const int64_t* labels, int64_t tokens, int64_t vocab, int64_t ignored, float gradient_scale,
                      float* d_logits) {
    double loss = 0;
    std::vector<double> exps(static_cast<size_t>(vocab));  // of one position, computed once for the loss and its gradient
    for (int64_t t = 0; t + 1 < tokens; ++t) {
        const int64_t label = labels[t + 1];
        if (label == ignored) continue;
        const float* row = logits + t * vocab;
        const float peak = *std::max_element(row, row + vocab);
        double total = 0;
        for (int64_t v = 0; v < vocab; ++v) total += exps[size_t(v)] = std::exp(double(row[v] - peak));
        loss += std::log(total) + peak - row[label];
        if (!d_logits) continue;
        float* d = d_logits + t * vocab;
        for (int64_t v = 0; v < vocab; ++v) d[v] = float(exps[size_t(v)] / total) * gradient_scale;
        d[label] -= gradient_scale;
    }
    return loss;
}

}  // namespace mwb::train
