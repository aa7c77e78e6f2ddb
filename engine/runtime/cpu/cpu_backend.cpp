#include "engine/runtime/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb {

std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const ModelGraph> graph, int threads) {
    return std::make_unique<cpu::CpuBackend>(std::move(graph), threads);
}

namespace cpu {

CpuBackend::CpuBackend(std::shared_ptr<const ModelGraph> graph, int threads)
    : graph_(std::move(graph)), config_(graph_->config), pool_(threads) {
    auto keep = [&](const TensorView& tensor) { small_weights_.emplace(tensor.data, decode_vector(tensor)); };
    auto keep_bias = [&](const LinearWeight& linear) {
        if (linear.bias) keep(*linear.bias);
    };
    keep(graph_->final_norm.weight);
    for (const auto& layer : graph_->layers) {
        keep(layer.input_norm.weight);
        keep(layer.post_attention_norm.weight);
        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
            keep(mla->kv_a_norm.weight);
            if (mla->q_a_norm) keep(mla->q_a_norm->weight);
        } else {
            const auto& gqa = std::get<GqaWeights>(layer.attention);
            keep_bias(gqa.q_proj);
            keep_bias(gqa.k_proj);
            keep_bias(gqa.v_proj);
        }
        if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward))
            if (moe->score_bias) keep(moe->score_bias->weight);
    }
    cache_width_ = config_.kv_cache_values_per_token() / config_.num_layers;
}

const std::vector<float>& CpuBackend::small(const TensorView& tensor) const { return small_weights_.at(tensor.data); }

Status CpuBackend::reserve_cache(int64_t slots, int64_t max_tokens) {
    if (slots <= 0 || max_tokens <= 0) return make_error("the KV cache needs at least one slot and one token");
    const size_t floats = size_t(slots * max_tokens * cache_width_);
    try {
        cache_.assign(size_t(config_.num_layers), std::vector<float>(floats, 0.0f));
    } catch (const std::bad_alloc&) {
        cache_.clear();
        slots_ = capacity_ = 0;
        return make_error("not enough memory for a KV cache of " + std::to_string(slots) + " × " + std::to_string(max_tokens) +
                          " tokens (" + std::to_string(floats * 4 * size_t(config_.num_layers) >> 20) + " MiB)");
    }
    slots_ = slots;
    capacity_ = max_tokens;
    return {};
}

float* CpuBackend::cache_row(int64_t layer, int64_t slot, int64_t position) {
    return cache_[size_t(layer)].data() + ((slot * capacity_) + position) * cache_width_;
}

MemoryReport CpuBackend::memory() const {
    MemoryReport report;
    for (const auto& [name, tensor] : graph_->store->tensors()) report.weight_bytes += tensor.bytes;
    for (const auto& layer : cache_) report.kv_cache_bytes += layer.size() * sizeof(float);
    for (const auto& [key, values] : small_weights_) report.workspace_bytes += values.size() * sizeof(float);
    return report;
}

void CpuBackend::project(const LinearWeight& weight, const float* bias, const float* x, int64_t rows, float* y) {
    linear(pool_, weight, bias, x, rows, y);
    if (!adapter_) return;
    auto delta = adapter_->find(&weight);
    if (delta != adapter_->end()) add_low_rank(pool_, delta->second, x, rows, weight.in_features, weight.out_features, y);
}

Result<std::vector<float>> CpuBackend::forward(const ForwardBatch& batch, ForwardObserver* observer) {
    const int64_t hidden = config_.hidden_size, vocab = config_.vocab_size;
    adapter_ = batch.adapter;
    const int64_t total = int64_t(batch.tokens.size());
    RowLayout rows;
    int64_t counted = 0;
    for (const auto& chunk : batch.chunks) {
        if (chunk.slot < 0 || chunk.slot >= slots_)
            return make_error("KV-cache slot " + std::to_string(chunk.slot) + " does not exist (" + std::to_string(slots_) + " reserved)");
        if (chunk.token_count <= 0 || chunk.start_position < 0 || chunk.start_position + chunk.token_count > capacity_)
            return make_error("the context is full: " + std::to_string(chunk.start_position + chunk.token_count) +
                              " tokens do not fit the KV cache of " + std::to_string(capacity_));
        rows.chunk_first_row.push_back(counted);
        for (int64_t i = 0; i < chunk.token_count; ++i) {
            rows.slot.push_back(chunk.slot);
            rows.position.push_back(chunk.start_position + i);
        }
        counted += chunk.token_count;
    }
    if (counted != total) return make_error("the batch's chunks do not cover its tokens");
    for (int32_t token : batch.tokens)
        if (token < 0 || token >= vocab)
            return make_error("token id " + std::to_string(token) + " is outside the vocabulary of " + std::to_string(vocab));

    MWB_TRY(check_embedding_overrides(batch.embedding_overrides, total, hidden));
    const EmbeddingOverrides& overrides = batch.embedding_overrides;

    std::vector<float> x(size_t(total * hidden)), h(x.size()), delta(x.size());
    for (int64_t r = 0; r < total; ++r) decode_rows(graph_->embed_tokens, batch.tokens[size_t(r)], 1, x.data() + r * hidden);
    for (size_t i = 0; i < overrides.rows.size(); ++i)
        std::copy_n(overrides.values.data() + i * size_t(hidden), hidden, x.data() + overrides.rows[i] * hidden);

    const bool hidden_wanted = observer && observer->wants_hidden_states();
    auto report_hidden = [&](int64_t index, const float* values) {
        for (int64_t r = 0; r < total; ++r)
            observer->on_hidden_state(rows.slot[size_t(r)], rows.position[size_t(r)], index, hidden, values + r * hidden);
    };
    if (hidden_wanted) report_hidden(0, x.data());

    const float eps = float(config_.rms_norm_eps);
    const int64_t layers = int64_t(graph_->layers.size());
    for (int64_t l = 0; l < layers; ++l) {
        const DecoderLayer& layer = graph_->layers[size_t(l)];
        rms_norm(x.data(), small(layer.input_norm.weight).data(), total, hidden, eps, h.data());
        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention))
            mla_attention(l, *mla, h.data(), batch, rows, delta.data(), observer);
        else
            gqa_attention(l, std::get<GqaWeights>(layer.attention), h.data(), batch, rows, delta.data(), observer);
        for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];

        rms_norm(x.data(), small(layer.post_attention_norm.weight).data(), total, hidden, eps, h.data());
        if (const auto* experts = std::get_if<MoeWeights>(&layer.feed_forward))
            moe(l, *experts, h.data(), rows, delta.data(), observer);
        else
            mlp(std::get<MlpWeights>(layer.feed_forward), h.data(), total, delta.data());
        for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
        if (hidden_wanted && l + 1 < layers) report_hidden(l + 1, x.data());
    }

    std::vector<int64_t> output_rows;
    if (batch.logits_for_all_tokens) {
        for (int64_t r = 0; r < total; ++r) output_rows.push_back(r);
    } else {
        for (size_t c = 0; c < batch.chunks.size(); ++c)
            output_rows.push_back(rows.chunk_first_row[c] + batch.chunks[c].token_count - 1);
    }
    if (hidden_wanted) {
        rms_norm(x.data(), small(graph_->final_norm.weight).data(), total, hidden, eps, h.data());
        report_hidden(layers, h.data());
    }
    std::vector<float> normed(output_rows.size() * size_t(hidden));
    for (size_t i = 0; i < output_rows.size(); ++i)
        rms_norm(x.data() + output_rows[i] * hidden, small(graph_->final_norm.weight).data(), 1, hidden, eps,
                 normed.data() + i * size_t(hidden));
    std::vector<float> logits(output_rows.size() * size_t(vocab));
    linear(pool_, graph_->lm_head, nullptr, normed.data(), int64_t(output_rows.size()), logits.data());
    return logits;
}

void CpuBackend::mlp(const MlpWeights& w, const float* h, int64_t rows, float* out) {
    const int64_t inner = w.gate_proj.out_features;
    std::vector<float> gate(size_t(rows * inner)), up(gate.size());
    project(w.gate_proj, nullptr, h, rows, gate.data());
    project(w.up_proj, nullptr, h, rows, up.data());
    silu_mul(gate.data(), up.data(), rows * inner);
    project(w.down_proj, nullptr, gate.data(), rows, out);
}

void CpuBackend::moe(int64_t layer, const MoeWeights& w, const float* h, const RowLayout& rows, float* out,
                     ForwardObserver* observer) {
    const int64_t total = int64_t(rows.slot.size()), hidden = config_.hidden_size;
    const int64_t experts = w.config.n_routed_experts, k = w.config.experts_per_token;
    std::vector<float> logits(size_t(total * experts));
    linear(pool_, w.router, nullptr, h, total, logits.data());
    const float* bias = w.score_bias ? small(w.score_bias->weight).data() : nullptr;

    std::vector<int32_t> chosen(size_t(total * k));
    std::vector<float> weights(size_t(total * k));
    std::vector<std::vector<std::pair<int64_t, float>>> tokens_of_expert(static_cast<size_t>(experts));
    for (int64_t r = 0; r < total; ++r) {
        route_token(w.config, logits.data() + r * experts, bias, chosen.data() + r * k, weights.data() + r * k);
        for (int64_t i = 0; i < k; ++i) tokens_of_expert[size_t(chosen[size_t(r * k + i)])].emplace_back(r, weights[size_t(r * k + i)]);
        if (observer)
            observer->on_routing(rows.slot[size_t(r)], rows.position[size_t(r)], layer, {chosen.data() + r * k, size_t(k)},
                                 {weights.data() + r * k, size_t(k)}, {logits.data() + r * experts, size_t(experts)});
    }

    std::fill(out, out + total * hidden, 0.0f);
    std::vector<float> gathered, expert_out;
    for (int64_t e = 0; e < experts; ++e) {
        const auto& assigned = tokens_of_expert[size_t(e)];
        if (assigned.empty()) continue;
        const int64_t n = int64_t(assigned.size());
        gathered.resize(size_t(n * hidden));
        expert_out.resize(size_t(n * hidden));
        for (int64_t i = 0; i < n; ++i)
            std::memcpy(gathered.data() + i * hidden, h + assigned[size_t(i)].first * hidden, size_t(hidden) * sizeof(float));
        mlp(w.experts[size_t(e)], gathered.data(), n, expert_out.data());
        for (int64_t i = 0; i < n; ++i) {
            float* target = out + assigned[size_t(i)].first * hidden;
            const float weight = assigned[size_t(i)].second;
            for (int64_t j = 0; j < hidden; ++j) target[j] += weight * expert_out[size_t(i * hidden + j)];
        }
    }
    if (w.shared) {
        std::vector<float> shared(size_t(total * hidden));
        mlp(*w.shared, h, total, shared.data());
        for (size_t i = 0; i < shared.size(); ++i) out[i] += shared[i];
    }
}

}  // namespace cpu
}  // namespace mwb
