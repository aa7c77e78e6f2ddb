#include "engine/train/lora_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/runtime/cpu/cpu_ops.h"
#include "engine/train/backward_ops.h"

namespace mwb::train {

using Vec = std::vector<float>;

LoraGradients LoraGradients::zeros_like(const LoraAdapter& adapter) {
    LoraGradients g;
    for (const LoraModule& m : adapter.modules()) {
        g.a.emplace_back(m.a.size(), 0.0f);
        g.b.emplace_back(m.b.size(), 0.0f);
    }
    return g;
}

void LoraGradients::zero() {
    for (auto& v : a) std::fill(v.begin(), v.end(), 0.0f);
    for (auto& v : b) std::fill(v.begin(), v.end(), 0.0f);
}

double LoraGradients::squared_norm() const {
    double sum = 0;
    for (const auto* group : {&a, &b})
        for (const auto& v : *group)
            for (float x : v) sum += double(x) * x;
    return sum;
}

void LoraGradients::scale(float factor) {
    for (auto* group : {&a, &b})
        for (auto& v : *group)
            for (float& x : v) x *= factor;
}

int64_t counted_labels(std::span<const int64_t> labels) {
    int64_t count = 0;
    for (size_t t = 1; t < labels.size(); ++t) count += labels[t] != kIgnoredLabel;
    return count;
}

// What the backward pass needs of one decoder layer's forward pass.
struct LoraModel::LayerTape {
    Vec x_in, inv_in, h1;            // residual input, its norm factors, the normed input
    Vec qa, inv_qa, qa_normed, q;    // q_lora path (q is after RoPE)
    Vec kv_a, inv_latent, latent, k_rope, kv;  // MLA: k_rope after RoPE; kv = the expanded keys/values
    Vec k, v;                        // GQA: keys after RoPE, values
    Vec probabilities;               // [heads, T, T], causal
    Vec attended;                    // [T, heads·v]
    Vec x_mid, inv_mid, h2;
    // Feed-forward: a dense MLP, or the router and per-expert MLPs.
    Vec gate, up, act;               // dense or shared MLP [T, intermediate]
    Vec scores;                      // [T, experts] after sigmoid/softmax
    std::vector<int32_t> chosen;     // [T, k]
    Vec weights;                     // [T, k]
    struct Expert {
        std::vector<int64_t> tokens, slots;  // which token, which of its k choices
        Vec input, gate, up, act, out;
    };
    std::vector<Expert> experts;
};

struct LoraModel::Tape {
    std::vector<LayerTape> layers;
    Vec x_final, inv_final, h_final;
};

// One row's forward and backward over the adapter, with the gradients it adds to.
class LoraModel::Context {
public:
    Context(LoraModel& model, const LoraAdapter& adapter, LoraGradients* gradients, int64_t tokens, std::vector<int32_t>* routing)
        : model_(model), graph_(*model.graph_), config_(graph_.config), adapter_(adapter), gradients_(gradients), t_(tokens),
          scale_(float(adapter.config().scale())), routing_(routing), replay_(routing && !routing->empty()),
          dropout_(model.dropout_seed_ != 0 ? adapter.config().dropout : 0.0), keep_scale_(float(1.0 / (1.0 - dropout_))),
          dropout_seed_(model.dropout_seed_) {
        for (size_t i = 0; i < adapter.modules().size(); ++i) module_index_[adapter.modules()[i].name] = i;
    }

    // y = x·Wᵀ + bias (+ s·(x·Aᵀ)·Bᵀ when the adapter has this module).
    Vec project(const std::string& name, const LinearWeight& weight, const float* x, int64_t rows) {
        Vec y(size_t(rows * weight.out_features));
        matmul_nt(pool(), x, model_.frozen(weight).data(), rows, weight.in_features, weight.out_features, y.data());
        if (weight.bias) {
            const Vec& bias = model_.frozen(*weight.bias);
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t o = 0; o < weight.out_features; ++o) y[size_t(r * weight.out_features + o)] += bias[size_t(o)];
        }
        if (const LoraModule* m = adapter_.find(name)) {
            const int64_t r = adapter_.config().rank;
            const Vec dropped = dropout_input(name, x, rows * m->in_features);
            const float* lora_x = dropped.empty() ? x : dropped.data();
            Vec u(size_t(rows * r));
            matmul_nt(pool(), lora_x, m->a.data(), rows, m->in_features, r, u.data());
            Vec delta(y.size());
            matmul_nt(pool(), u.data(), m->b.data(), rows, r, m->out_features, delta.data());
            for (size_t i = 0; i < y.size(); ++i) y[i] += scale_ * delta[i];
        }
        return y;
    }

    // dx += dy·W (+ s·(dy·B)·A), and the adapter's gradients: dB += s·dyᵀ·(x·Aᵀ), dA += s·(dy·B)ᵀ·x (x after the
    // adapter's dropout, which the LoRA part of dx passes back through).
    void project_backward(const std::string& name, const LinearWeight& weight, const float* x, const float* dy, int64_t rows, float* dx) {
        matmul_nn_add(pool(), dy, model_.frozen(weight).data(), rows, weight.out_features, weight.in_features, dx);
        const LoraModule* m = adapter_.find(name);
        if (!m) return;
        const int64_t r = adapter_.config().rank, in = m->in_features;
        const Vec dropped = dropout_input(name, x, rows * in);
        const float* lora_x = dropped.empty() ? x : dropped.data();
        Vec u(size_t(rows * r)), dy_b(size_t(rows * r), 0.0f);
        matmul_nt(pool(), lora_x, m->a.data(), rows, in, r, u.data());
        matmul_nn_add(pool(), dy, m->b.data(), rows, m->out_features, r, dy_b.data());
        Vec scaled(dy_b);
        for (float& v : scaled) v *= scale_;
        if (dropped.empty()) {
            matmul_nn_add(pool(), scaled.data(), m->a.data(), rows, r, in, dx);
        } else {
            Vec d_dropped(size_t(rows * in), 0.0f);
            matmul_nn_add(pool(), scaled.data(), m->a.data(), rows, r, in, d_dropped.data());
            const size_t index = module_index_.at(name);
            for (int64_t i = 0; i < rows * in; ++i)
                if (kept(index, i)) dx[i] += d_dropped[size_t(i)] * keep_scale_;
        }
        if (!gradients_) return;
        const size_t index = module_index_.at(name);
        matmul_tn_add(pool(), dy, u.data(), rows, m->out_features, r, scale_, gradients_->b[index].data());
        matmul_tn_add(pool(), dy_b.data(), lora_x, rows, r, in, scale_, gradients_->a[index].data());
    }

    // PEFT's lora_dropout on the adapter's input while training: whether element `i` of module `index`'s input
    // is kept is a hash of the row's dropout seed, so recomputations and resumed runs draw the same mask.
    bool kept(size_t index, int64_t i) const {
        uint64_t z = dropout_seed_ ^ (uint64_t(index + 1) * 0x9e3779b97f4a7c15ull) ^ (uint64_t(i) * 0xbf58476d1ce4e5b9ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        return double(z >> 11) * 0x1.0p-53 >= dropout_;
    }
    // The input with dropout applied, or empty when there is none.
    Vec dropout_input(const std::string& name, const float* x, int64_t count) const {
        if (dropout_ <= 0) return {};
        const size_t index = module_index_.at(name);
        Vec dropped(static_cast<size_t>(count));
        for (int64_t i = 0; i < count; ++i) dropped[size_t(i)] = kept(index, i) ? x[i] * keep_scale_ : 0.0f;
        return dropped;
    }

    Vec attention_forward(int64_t layer, const MlaWeights& w, LayerTape& tape);
    Vec attention_backward(int64_t layer, const MlaWeights& w, const LayerTape& tape, const float* d_out);
    Vec attention_forward(int64_t layer, const GqaWeights& w, LayerTape& tape);
    Vec attention_backward(int64_t layer, const GqaWeights& w, const LayerTape& tape, const float* d_out);
    Vec mlp_forward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, Vec& gate, Vec& up, Vec& act);
    Vec mlp_backward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, const Vec& gate, const Vec& up,
                     const Vec& act, const float* d_out);
    // `imposed`: the experts of every token, as a recomputation must use them (null: the router chooses).
    Vec moe_forward(int64_t layer, const MoeWeights& w, LayerTape& tape, const std::vector<int32_t>* imposed);
    // One decoder layer from tape.x_in: fills the tape and returns the layer's output.
    Vec layer_forward(int64_t layer, LayerTape& tape, const std::vector<int32_t>* imposed_experts);
    Vec moe_backward(int64_t layer, const MoeWeights& w, const LayerTape& tape, const float* d_out);

    ThreadPool& pool() { return *model_.pool_; }
    float eps() const { return float(config_.rms_norm_eps); }
    static std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer); }

    LoraModel& model_;
    const ModelGraph& graph_;
    const ModelConfig& config_;
    const LoraAdapter& adapter_;
    LoraGradients* gradients_;
    int64_t t_;
    float scale_;
    std::vector<int32_t>* routing_;  // recorded, or replayed when it came filled
    bool replay_;
    size_t routing_position_ = 0;
    double dropout_;
    float keep_scale_;
    uint64_t dropout_seed_;
    std::unordered_map<std::string, size_t> module_index_;
};

Vec LoraModel::Context::attention_forward(int64_t layer, const MlaWeights& w, LayerTape& tape) {
    const MlaConfig& m = *config_.mla;
    const int64_t heads = config_.num_heads, nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, vdim = m.v_head_dim;
    const int64_t lora = m.kv_lora_rank, qk = nope + rope, kv_head = nope + vdim;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float scale = float(config_.attention_scale());
    const float* h1 = tape.h1.data();

    if (w.q_proj) {
        tape.q = project(p + ".q_proj", *w.q_proj, h1, t_);
    } else {
        const int64_t q_lora = w.q_a_proj->out_features;
        tape.qa = project(p + ".q_a_proj", *w.q_a_proj, h1, t_);
        tape.qa_normed.resize(tape.qa.size());
        tape.inv_qa.resize(size_t(t_));
        rms_norm_forward(tape.qa.data(), model_.frozen(*w.q_a_norm).data(), t_, q_lora, eps(), tape.qa_normed.data(), tape.inv_qa.data());
        tape.q = project(p + ".q_b_proj", *w.q_b_proj, tape.qa_normed.data(), t_);
    }
    tape.kv_a = project(p + ".kv_a_proj_with_mqa", w.kv_a_proj, h1, t_);
    tape.latent.resize(size_t(t_ * lora));
    tape.inv_latent.resize(size_t(t_));
    tape.k_rope.resize(size_t(t_ * rope));
    for (int64_t t = 0; t < t_; ++t) {
        rms_norm_forward(tape.kv_a.data() + t * (lora + rope), model_.frozen(w.kv_a_norm).data(), 1, lora, eps(),
                         tape.latent.data() + t * lora, tape.inv_latent.data() + t);
        std::memcpy(tape.k_rope.data() + t * rope, tape.kv_a.data() + t * (lora + rope) + lora, size_t(rope) * sizeof(float));
        graph_.rope.apply(tape.k_rope.data() + t * rope, 1, rope, t);
        graph_.rope.apply(tape.q.data() + t * heads * qk + nope, heads, qk, t);
    }
    tape.kv = project(p + ".kv_b_proj", w.kv_b_proj, tape.latent.data(), t_);

    tape.probabilities.assign(size_t(heads * t_ * t_), 0.0f);
    tape.attended.assign(size_t(t_ * heads * vdim), 0.0f);
    pool().parallel_for(heads * t_, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t hd = task / t_, i = task % t_;
            const float* q = tape.q.data() + i * heads * qk + hd * qk;
            float* p_row = tape.probabilities.data() + (hd * t_ + i) * t_;
            for (int64_t j = 0; j <= i; ++j) {
                const float* k_nope = tape.kv.data() + j * heads * kv_head + hd * kv_head;
                p_row[j] = (cpu::dot(q, k_nope, nope) + cpu::dot(q + nope, tape.k_rope.data() + j * rope, rope)) * scale;
            }
            cpu::softmax(p_row, i + 1);
            float* o = tape.attended.data() + i * heads * vdim + hd * vdim;
            for (int64_t j = 0; j <= i; ++j) {
                const float* v = tape.kv.data() + j * heads * kv_head + hd * kv_head + nope;
                for (int64_t d = 0; d < vdim; ++d) o[d] += p_row[j] * v[d];
            }
        }
    });
    return project(p + ".o_proj", w.o_proj, tape.attended.data(), t_);
}

Vec LoraModel::Context::attention_backward(int64_t layer, const MlaWeights& w, const LayerTape& tape, const float* d_out) {
    const MlaConfig& m = *config_.mla;
    const int64_t heads = config_.num_heads, nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, vdim = m.v_head_dim;
    const int64_t lora = m.kv_lora_rank, qk = nope + rope, kv_head = nope + vdim, hidden = config_.hidden_size;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float scale = float(config_.attention_scale());

    Vec d_attended(tape.attended.size(), 0.0f);
    project_backward(p + ".o_proj", w.o_proj, tape.attended.data(), d_out, t_, d_attended.data());

    // Softmax attention per head: dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − rowsum), then dQ = dS·K, dK = dSᵀ·Q (scaled).
    Vec d_q(tape.q.size(), 0.0f), d_kv(tape.kv.size(), 0.0f);
    // The rope key is shared by every head: each head adds into its own copy, summed in head order after.
    Vec d_k_rope_per_head(size_t(heads * t_ * rope), 0.0f);
    pool().parallel_for(heads, [&](int64_t h0, int64_t h1) {
        Vec d_p(static_cast<size_t>(t_));
        for (int64_t hd = h0; hd < h1; ++hd) {
            float* d_k_rope_head = d_k_rope_per_head.data() + hd * t_ * rope;
            for (int64_t i = 0; i < t_; ++i) {
                const float* p_row = tape.probabilities.data() + (hd * t_ + i) * t_;
                const float* d_o = d_attended.data() + i * heads * vdim + hd * vdim;
                float row_sum = 0;
                for (int64_t j = 0; j <= i; ++j) {
                    const float* v = tape.kv.data() + j * heads * kv_head + hd * kv_head + nope;
                    d_p[size_t(j)] = cpu::dot(d_o, v, vdim);
                    row_sum += p_row[j] * d_p[size_t(j)];
                    float* d_v = d_kv.data() + j * heads * kv_head + hd * kv_head + nope;
                    for (int64_t d = 0; d < vdim; ++d) d_v[d] += p_row[j] * d_o[d];
                }
                const float* q = tape.q.data() + i * heads * qk + hd * qk;
                float* d_qi = d_q.data() + i * heads * qk + hd * qk;
                for (int64_t j = 0; j <= i; ++j) {
                    const float d_s = p_row[j] * (d_p[size_t(j)] - row_sum) * scale;
                    if (d_s == 0.0f) continue;
                    const float* k_nope = tape.kv.data() + j * heads * kv_head + hd * kv_head;
                    const float* k_rope = tape.k_rope.data() + j * rope;
                    float* d_k_nope = d_kv.data() + j * heads * kv_head + hd * kv_head;
                    for (int64_t d = 0; d < nope; ++d) {
                        d_qi[d] += d_s * k_nope[d];
                        d_k_nope[d] += d_s * q[d];
                    }
                    for (int64_t d = 0; d < rope; ++d) {
                        d_qi[nope + d] += d_s * k_rope[d];
                        d_k_rope_head[j * rope + d] += d_s * q[nope + d];
                    }
                }
            }
        }
    });
    Vec d_k_rope(tape.k_rope.size(), 0.0f);
    for (int64_t hd = 0; hd < heads; ++hd)
        for (size_t i = 0; i < d_k_rope.size(); ++i) d_k_rope[i] += d_k_rope_per_head[size_t(hd * t_ * rope) + i];

    // Back through RoPE (its transpose) to the unrotated query and key parts.
    for (int64_t t = 0; t < t_; ++t) {
        graph_.rope.apply_transposed(d_q.data() + t * heads * qk + nope, heads, qk, t);
        graph_.rope.apply_transposed(d_k_rope.data() + t * rope, 1, rope, t);
    }
    Vec d_latent(tape.latent.size(), 0.0f);
    project_backward(p + ".kv_b_proj", w.kv_b_proj, tape.latent.data(), d_kv.data(), t_, d_latent.data());
    Vec d_kv_a(tape.kv_a.size(), 0.0f);
    for (int64_t t = 0; t < t_; ++t) {
        rms_norm_backward_add(tape.kv_a.data() + t * (lora + rope), tape.inv_latent.data() + t, model_.frozen(w.kv_a_norm).data(),
                              d_latent.data() + t * lora, 1, lora, d_kv_a.data() + t * (lora + rope));
        std::memcpy(d_kv_a.data() + t * (lora + rope) + lora, d_k_rope.data() + t * rope, size_t(rope) * sizeof(float));
    }
    Vec d_h1(size_t(t_ * hidden), 0.0f);
    project_backward(p + ".kv_a_proj_with_mqa", w.kv_a_proj, tape.h1.data(), d_kv_a.data(), t_, d_h1.data());
    if (w.q_proj) {
        project_backward(p + ".q_proj", *w.q_proj, tape.h1.data(), d_q.data(), t_, d_h1.data());
    } else {
        const int64_t q_lora = w.q_a_proj->out_features;
        Vec d_qa_normed(tape.qa_normed.size(), 0.0f), d_qa(tape.qa.size(), 0.0f);
        project_backward(p + ".q_b_proj", *w.q_b_proj, tape.qa_normed.data(), d_q.data(), t_, d_qa_normed.data());
        rms_norm_backward_add(tape.qa.data(), tape.inv_qa.data(), model_.frozen(*w.q_a_norm).data(), d_qa_normed.data(), t_, q_lora, d_qa.data());
        project_backward(p + ".q_a_proj", *w.q_a_proj, tape.h1.data(), d_qa.data(), t_, d_h1.data());
    }
    return d_h1;
}

Vec LoraModel::Context::attention_forward(int64_t layer, const GqaWeights& w, LayerTape& tape) {
    const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, dim = config_.head_dim, group = heads / kv_heads;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float scale = float(config_.attention_scale());
    tape.q = project(p + ".q_proj", w.q_proj, tape.h1.data(), t_);
    tape.k = project(p + ".k_proj", w.k_proj, tape.h1.data(), t_);
    tape.v = project(p + ".v_proj", w.v_proj, tape.h1.data(), t_);
    for (int64_t t = 0; t < t_; ++t) {
        graph_.rope.apply(tape.q.data() + t * heads * dim, heads, dim, t);
        graph_.rope.apply(tape.k.data() + t * kv_heads * dim, kv_heads, dim, t);
    }
    tape.probabilities.assign(size_t(heads * t_ * t_), 0.0f);
    tape.attended.assign(size_t(t_ * heads * dim), 0.0f);
    pool().parallel_for(heads * t_, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
            const int64_t hd = task / t_, i = task % t_, kv = hd / group;
            const float* q = tape.q.data() + (i * heads + hd) * dim;
            float* p_row = tape.probabilities.data() + (hd * t_ + i) * t_;
            for (int64_t j = 0; j <= i; ++j) p_row[j] = cpu::dot(q, tape.k.data() + (j * kv_heads + kv) * dim, dim) * scale;
            cpu::softmax(p_row, i + 1);
            float* o = tape.attended.data() + (i * heads + hd) * dim;
            for (int64_t j = 0; j <= i; ++j) {
                const float* v = tape.v.data() + (j * kv_heads + kv) * dim;
                for (int64_t d = 0; d < dim; ++d) o[d] += p_row[j] * v[d];
            }
        }
    });
    return project(p + ".o_proj", w.o_proj, tape.attended.data(), t_);
}

Vec LoraModel::Context::attention_backward(int64_t layer, const GqaWeights& w, const LayerTape& tape, const float* d_out) {
    const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, dim = config_.head_dim, group = heads / kv_heads;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float scale = float(config_.attention_scale());
    Vec d_attended(tape.attended.size(), 0.0f);
    project_backward(p + ".o_proj", w.o_proj, tape.attended.data(), d_out, t_, d_attended.data());
    Vec d_q(tape.q.size(), 0.0f), d_k(tape.k.size(), 0.0f), d_v(tape.v.size(), 0.0f);
    // One task per key/value head: the heads of its group add into its keys and values, in head order.
    pool().parallel_for(kv_heads, [&](int64_t k0, int64_t k1) {
        Vec d_p(static_cast<size_t>(t_));
        for (int64_t kv = k0; kv < k1; ++kv)
            for (int64_t hd = kv * group; hd < (kv + 1) * group; ++hd)
                for (int64_t i = 0; i < t_; ++i) {
                    const float* p_row = tape.probabilities.data() + (hd * t_ + i) * t_;
                    const float* d_o = d_attended.data() + (i * heads + hd) * dim;
                    const float* q = tape.q.data() + (i * heads + hd) * dim;
                    float* d_qi = d_q.data() + (i * heads + hd) * dim;
                    float row_sum = 0;
                    for (int64_t j = 0; j <= i; ++j) {
                        d_p[size_t(j)] = cpu::dot(d_o, tape.v.data() + (j * kv_heads + kv) * dim, dim);
                        row_sum += p_row[j] * d_p[size_t(j)];
                        float* d_vj = d_v.data() + (j * kv_heads + kv) * dim;
                        for (int64_t d = 0; d < dim; ++d) d_vj[d] += p_row[j] * d_o[d];
                    }
                    for (int64_t j = 0; j <= i; ++j) {
                        const float d_s = p_row[j] * (d_p[size_t(j)] - row_sum) * scale;
                        if (d_s == 0.0f) continue;
                        const float* k = tape.k.data() + (j * kv_heads + kv) * dim;
                        float* d_kj = d_k.data() + (j * kv_heads + kv) * dim;
                        for (int64_t d = 0; d < dim; ++d) {
                            d_qi[d] += d_s * k[d];
                            d_kj[d] += d_s * q[d];
                        }
                    }
                }
    });
    for (int64_t t = 0; t < t_; ++t) {
        graph_.rope.apply_transposed(d_q.data() + t * heads * dim, heads, dim, t);
        graph_.rope.apply_transposed(d_k.data() + t * kv_heads * dim, kv_heads, dim, t);
    }
    Vec d_h1(size_t(t_ * config_.hidden_size), 0.0f);
    project_backward(p + ".q_proj", w.q_proj, tape.h1.data(), d_q.data(), t_, d_h1.data());
    project_backward(p + ".k_proj", w.k_proj, tape.h1.data(), d_k.data(), t_, d_h1.data());
    project_backward(p + ".v_proj", w.v_proj, tape.h1.data(), d_v.data(), t_, d_h1.data());
    return d_h1;
}

Vec LoraModel::Context::mlp_forward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, Vec& gate, Vec& up,
                                    Vec& act) {
    gate = project(prefix + ".gate_proj", w.gate_proj, x, rows);
    up = project(prefix + ".up_proj", w.up_proj, x, rows);
    act.resize(gate.size());
    swiglu_forward(gate.data(), up.data(), int64_t(gate.size()), act.data());
    return project(prefix + ".down_proj", w.down_proj, act.data(), rows);
}

Vec LoraModel::Context::mlp_backward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, const Vec& gate,
                                     const Vec& up, const Vec& act, const float* d_out) {
    Vec d_act(act.size(), 0.0f), d_gate(gate.size()), d_up(up.size());
    project_backward(prefix + ".down_proj", w.down_proj, act.data(), d_out, rows, d_act.data());
    swiglu_backward(gate.data(), up.data(), d_act.data(), int64_t(gate.size()), d_gate.data(), d_up.data());
    Vec d_x(size_t(rows * w.gate_proj.in_features), 0.0f);
    project_backward(prefix + ".gate_proj", w.gate_proj, x, d_gate.data(), rows, d_x.data());
    project_backward(prefix + ".up_proj", w.up_proj, x, d_up.data(), rows, d_x.data());
    return d_x;
}

Vec LoraModel::Context::layer_forward(int64_t l, LayerTape& lt, const std::vector<int32_t>* imposed_experts) {
    const DecoderLayer& layer = graph_.layers[size_t(l)];
    const int64_t hidden = config_.hidden_size;
    Vec x = lt.x_in;
    lt.h1.resize(x.size());
    lt.inv_in.resize(size_t(t_));
    rms_norm_forward(x.data(), model_.frozen(layer.input_norm).data(), t_, hidden, eps(), lt.h1.data(), lt.inv_in.data());
    const Vec attention = std::visit([&](const auto& w) { return attention_forward(l, w, lt); }, layer.attention);
    for (size_t i = 0; i < x.size(); ++i) x[i] += attention[i];
    lt.x_mid = x;
    lt.h2.resize(x.size());
    lt.inv_mid.resize(size_t(t_));
    rms_norm_forward(x.data(), model_.frozen(layer.post_attention_norm).data(), t_, hidden, eps(), lt.h2.data(), lt.inv_mid.data());
    const Vec feed_forward = std::holds_alternative<MlpWeights>(layer.feed_forward)
                                 ? mlp_forward(layer_prefix(l) + ".mlp", std::get<MlpWeights>(layer.feed_forward), lt.h2.data(), t_, lt.gate, lt.up, lt.act)
                                 : moe_forward(l, std::get<MoeWeights>(layer.feed_forward), lt, imposed_experts);
    for (size_t i = 0; i < x.size(); ++i) x[i] += feed_forward[i];
    return x;
}

Vec LoraModel::Context::moe_forward(int64_t layer, const MoeWeights& w, LayerTape& tape, const std::vector<int32_t>* imposed) {
    const int64_t hidden = config_.hidden_size, experts = w.config.n_routed_experts, k = w.config.experts_per_token;
    const std::string p = layer_prefix(layer) + ".mlp";
    Vec logits(size_t(t_ * experts));
    matmul_nt(pool(), tape.h2.data(), model_.frozen(w.router).data(), t_, hidden, experts, logits.data());
    const Vec bias = w.score_bias ? model_.frozen(*w.score_bias) : Vec();
    tape.scores.resize(size_t(t_ * experts));
    tape.chosen.resize(size_t(t_ * k));
    tape.weights.resize(size_t(t_ * k));
    tape.experts.assign(size_t(experts), {});
    for (int64_t t = 0; t < t_; ++t) {
        int32_t* chosen = tape.chosen.data() + t * k;
        float* weights = tape.weights.data() + t * k;
        route_token(w.config, logits.data() + t * experts, bias.empty() ? nullptr : bias.data(), chosen, weights, tape.scores.data() + t * experts);
        const int32_t* given = imposed ? imposed->data() + t * k : replay_ ? routing_->data() + routing_position_ : nullptr;
        if (given) {  // experts chosen before, weighted as route_token weights its own choice
            std::copy_n(given, k, chosen);
            weigh_experts(w.config, tape.scores.data() + t * experts, chosen, weights);
        } else if (routing_) {
            routing_->insert(routing_->end(), chosen, chosen + k);
        }
        if (!imposed) routing_position_ += size_t(k);
        for (int64_t i = 0; i < k; ++i) {
            LayerTape::Expert& e = tape.experts[size_t(tape.chosen[size_t(t * k + i)])];
            e.tokens.push_back(t);
            e.slots.push_back(i);
        }
    }
    Vec out(size_t(t_ * hidden), 0.0f);
    for (int64_t index = 0; index < experts; ++index) {
        LayerTape::Expert& e = tape.experts[size_t(index)];
        if (e.tokens.empty()) continue;
        const int64_t n = int64_t(e.tokens.size());
        e.input.resize(size_t(n * hidden));
        for (int64_t i = 0; i < n; ++i)
            std::memcpy(e.input.data() + i * hidden, tape.h2.data() + e.tokens[size_t(i)] * hidden, size_t(hidden) * sizeof(float));
        e.out = mlp_forward(p + ".experts." + std::to_string(index), w.experts[size_t(index)], e.input.data(), n, e.gate, e.up, e.act);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t t = e.tokens[size_t(i)];
            const float weight = tape.weights[size_t(t * k + e.slots[size_t(i)])];
            for (int64_t j = 0; j < hidden; ++j) out[size_t(t * hidden + j)] += weight * e.out[size_t(i * hidden + j)];
        }
    }
    if (w.shared) {
        const Vec shared = mlp_forward(p + ".shared_experts", *w.shared, tape.h2.data(), t_, tape.gate, tape.up, tape.act);
        for (size_t i = 0; i < out.size(); ++i) out[i] += shared[i];
    }
    return out;
}

Vec LoraModel::Context::moe_backward(int64_t layer, const MoeWeights& w, const LayerTape& tape, const float* d_out) {
    const int64_t hidden = config_.hidden_size, experts = w.config.n_routed_experts, k = w.config.experts_per_token;
    const std::string p = layer_prefix(layer) + ".mlp";
    Vec d_h2(size_t(t_ * hidden), 0.0f);
    if (w.shared) {
        const Vec d = mlp_backward(p + ".shared_experts", *w.shared, tape.h2.data(), t_, tape.gate, tape.up, tape.act, d_out);
        for (size_t i = 0; i < d.size(); ++i) d_h2[i] += d[i];
    }
    // Each expert: its output was weighted by the router, so the weight gets d_out·output and the expert d_out·weight.
    Vec d_weights(size_t(t_ * k), 0.0f);
    for (int64_t index = 0; index < experts; ++index) {
        const LayerTape::Expert& e = tape.experts[size_t(index)];
        if (e.tokens.empty()) continue;
        const int64_t n = int64_t(e.tokens.size());
        Vec d_expert_out(size_t(n * hidden));
        for (int64_t i = 0; i < n; ++i) {
            const int64_t t = e.tokens[size_t(i)], slot = t * k + e.slots[size_t(i)];
            const float weight = tape.weights[size_t(slot)];
            const float* d = d_out + t * hidden;
            d_weights[size_t(slot)] = cpu::dot(d, e.out.data() + i * hidden, hidden);
            for (int64_t j = 0; j < hidden; ++j) d_expert_out[size_t(i * hidden + j)] = weight * d[j];
        }
        const Vec d_input = mlp_backward(p + ".experts." + std::to_string(index), w.experts[size_t(index)], e.input.data(), n, e.gate, e.up,
                                         e.act, d_expert_out.data());
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < hidden; ++j) d_h2[size_t(e.tokens[size_t(i)] * hidden + j)] += d_input[size_t(i * hidden + j)];
    }
    // The router: from the weights' gradient to its logits, then through the (frozen) router to the input.
    Vec d_logits(size_t(t_ * experts));
    for (int64_t t = 0; t < t_; ++t)
        router_backward(w.config, tape.scores.data() + t * experts, tape.chosen.data() + t * k, d_weights.data() + t * k,
                        d_logits.data() + t * experts);
    matmul_nn_add(pool(), d_logits.data(), model_.frozen(w.router).data(), t_, experts, hidden, d_h2.data());
    return d_h2;
}

LoraModel::LoraModel(std::shared_ptr<const ModelGraph> graph, int threads)
    : graph_(std::move(graph)), pool_(std::make_unique<ThreadPool>(threads)) {}

Result<LoraModel> LoraModel::create(std::shared_ptr<const ModelGraph> graph, int threads) {
    LoraModel model(std::move(graph), threads);
    // Decode the frozen weights once.
    for (const auto& [name, weight] : linear_modules(*model.graph_)) model.frozen(*weight);
    model.frozen(model.graph_->lm_head);
    return model;
}

const Vec& LoraModel::frozen(const LinearWeight& weight) {
    Vec& values = frozen_[&weight];
    if (values.empty()) {
        values.resize(size_t(weight.out_features * weight.in_features));
        cpu::decode_rows(weight, 0, weight.out_features, values.data());
    }
    return values;
}

const Vec& LoraModel::frozen(const VectorWeight& weight) { return frozen(weight.weight); }

const Vec& LoraModel::frozen(const TensorView& tensor) {
    Vec& values = frozen_[&tensor];
    if (values.empty()) values = cpu::decode_vector(tensor);
    return values;
}

Result<double> LoraModel::row_loss(const LoraAdapter& adapter, std::span<const int32_t> ids, std::span<const int64_t> labels,
                                   float gradient_scale, LoraGradients* gradients, std::vector<float>* logits_out,
                                   std::vector<int32_t>* routing) {
    const ModelConfig& config = graph_->config;
    const int64_t t_count = int64_t(ids.size()), hidden = config.hidden_size, vocab = config.vocab_size;
    if (labels.size() != ids.size())
        return make_error("a row has " + std::to_string(ids.size()) + " tokens but " + std::to_string(labels.size()) + " labels");
    if (t_count == 0) return 0.0;
    for (int32_t id : ids)
        if (id < 0 || id >= vocab) return make_error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab));
    for (size_t t = 1; t < labels.size(); ++t)
        if (labels[t] != kIgnoredLabel && (labels[t] < 0 || labels[t] >= vocab))
            return make_error("label " + std::to_string(labels[t]) + " is outside the vocabulary of " + std::to_string(vocab));

    if (routing && !routing->empty() && config.moe &&
        routing->size() != graph_->moe_layers().size() * size_t(t_count * config.moe->experts_per_token))
        return make_error("the routing to replay was recorded for another row");
    Context c(*this, adapter, gradients, t_count, routing);
    Tape tape;
    tape.layers.resize(graph_->layers.size());
    Vec x(size_t(t_count * hidden));
    for (int64_t t = 0; t < t_count; ++t) cpu::decode_rows(graph_->embed_tokens, ids[size_t(t)], 1, x.data() + t * hidden);

    for (size_t l = 0; l < graph_->layers.size(); ++l) {
        LayerTape& lt = tape.layers[l];
        lt.x_in = x;
        x = c.layer_forward(int64_t(l), lt, nullptr);
        // With checkpointing only the layer's input (and its experts) stay; the backward pass recomputes the rest.
        if (checkpointing_ && gradients) {
            LayerTape kept;
            kept.x_in = std::move(lt.x_in);
            kept.chosen = std::move(lt.chosen);
            lt = std::move(kept);
        }
    }
    tape.x_final = x;
    tape.h_final.resize(x.size());
    tape.inv_final.resize(size_t(t_count));
    rms_norm_forward(x.data(), frozen(graph_->final_norm).data(), t_count, hidden, c.eps(), tape.h_final.data(), tape.inv_final.data());
    Vec logits(size_t(t_count * vocab));
    matmul_nt(*pool_, tape.h_final.data(), frozen(graph_->lm_head).data(), t_count, hidden, vocab, logits.data());

    // Cross-entropy of each position against the next label; its gradient is softmax − one-hot.
    Vec d_logits(gradients ? logits.size() : 0, 0.0f);
    const double loss = causal_lm_loss(logits.data(), labels.data(), t_count, vocab, kIgnoredLabel, gradient_scale,
                                       gradients ? d_logits.data() : nullptr);
    if (logits_out) *logits_out = std::move(logits);
    if (!gradients) return loss;

    Vec d_h(size_t(t_count * hidden), 0.0f);
    matmul_nn_add(*pool_, d_logits.data(), frozen(graph_->lm_head).data(), t_count, vocab, hidden, d_h.data());
    Vec d_x(x.size(), 0.0f);
    rms_norm_backward_add(tape.x_final.data(), tape.inv_final.data(), frozen(graph_->final_norm).data(), d_h.data(), t_count, hidden, d_x.data());
    for (size_t l = graph_->layers.size(); l-- > 0;) {
        const DecoderLayer& layer = graph_->layers[l];
        if (checkpointing_) {
            // The same forward again, on the same input and experts: the same tape, bit for bit.
            LayerTape full;
            full.x_in = std::move(tape.layers[l].x_in);
            const std::vector<int32_t> chosen = std::move(tape.layers[l].chosen);
            c.layer_forward(int64_t(l), full, chosen.empty() ? nullptr : &chosen);
            tape.layers[l] = std::move(full);
        }
        const LayerTape& lt = tape.layers[l];
        Vec d_h2;
        if (const auto* mlp = std::get_if<MlpWeights>(&layer.feed_forward))
            d_h2 = c.mlp_backward(Context::layer_prefix(int64_t(l)) + ".mlp", *mlp, lt.h2.data(), t_count, lt.gate, lt.up, lt.act, d_x.data());
        else
            d_h2 = c.moe_backward(int64_t(l), std::get<MoeWeights>(layer.feed_forward), lt, d_x.data());
        rms_norm_backward_add(lt.x_mid.data(), lt.inv_mid.data(), frozen(layer.post_attention_norm).data(), d_h2.data(), t_count, hidden, d_x.data());
        const Vec d_h1 = std::visit([&](const auto& w) { return c.attention_backward(int64_t(l), w, lt, d_x.data()); }, layer.attention);
        rms_norm_backward_add(lt.x_in.data(), lt.inv_in.data(), frozen(layer.input_norm).data(), d_h1.data(), t_count, hidden, d_x.data());
    }
    return loss;
}

}  // namespace mwb::train
