#include "engine/deploy/weight_inventory.h"

#include <cstdint>

namespace mwb::deploy {

namespace {

// Accumulates parameters and bytes tensor by tensor.
class Tally {
public:
    Tally(const ModelConfig& config, WeightFormat format) : config_(config), format_(format) {}

    // A matrix of a linear layer inside the decoder (quantisable, FP8 in DeepSeek-V3's release).
    double linear(int64_t rows, int64_t cols) const {
        const double n = double(rows) * double(cols);
        const auto blocks = [](int64_t size, int64_t block) { return double((size + block - 1) / block); };
        switch (format_) {
            case WeightFormat::Checkpoint:
                if (config_.fp8) return n + blocks(rows, config_.fp8->block_rows) * blocks(cols, config_.fp8->block_cols) * 4;
                return n * 2;
            case WeightFormat::Bf16: return n * 2;
            case WeightFormat::Int8: return n + double(rows) * blocks(cols, 128) * 2;
            case WeightFormat::Int4: return n / 2 + double(rows) * blocks(cols, 128) * 2;
        }
        return n * 2;
    }
    // Embeddings, lm_head, norms and routers stay bf16 in every format.
    static double plain(int64_t count) { return double(count) * 2; }

private:
    const ModelConfig& config_;
    WeightFormat format_;
};

struct LayerSizes {
    int64_t attention = 0, mlp = 0, routed = 0, routed_active = 0, norms = 0;
    double attention_bytes = 0, mlp_bytes = 0, routed_bytes = 0, routed_active_bytes = 0, norm_bytes = 0;
};

LayerSizes layer_sizes(const ModelConfig& c, const Tally& tally, bool moe_layer) {
    LayerSizes s;
    const int64_t h = c.hidden_size;
    auto add_linear = [&](int64_t& params, double& bytes, int64_t rows, int64_t cols) {
        params += rows * cols;
        bytes += tally.linear(rows, cols);
    };
    auto add_plain = [&](int64_t& params, double& bytes, int64_t count) {
        params += count;
        bytes += Tally::plain(count);
    };
    add_plain(s.norms, s.norm_bytes, 2 * h);
    if (c.mla) {
        const MlaConfig& m = *c.mla;
        const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
        if (m.q_lora_rank) {
            add_linear(s.attention, s.attention_bytes, *m.q_lora_rank, h);
            add_plain(s.norms, s.norm_bytes, *m.q_lora_rank);
            add_linear(s.attention, s.attention_bytes, c.num_heads * qk, *m.q_lora_rank);
        } else {
            add_linear(s.attention, s.attention_bytes, c.num_heads * qk, h);
        }
        add_linear(s.attention, s.attention_bytes, m.kv_lora_rank + m.qk_rope_head_dim, h);
        add_plain(s.norms, s.norm_bytes, m.kv_lora_rank);
        add_linear(s.attention, s.attention_bytes, c.num_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank);
        add_linear(s.attention, s.attention_bytes, h, c.num_heads * m.v_head_dim);
    } else {
        const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
        add_linear(s.attention, s.attention_bytes, q, h);
        add_linear(s.attention, s.attention_bytes, kv, h);
        add_linear(s.attention, s.attention_bytes, kv, h);
        add_linear(s.attention, s.attention_bytes, h, q);
        if (c.qkv_bias) add_plain(s.attention, s.attention_bytes, q + 2 * kv);
    }
    if (moe_layer) {
        const MoeConfig& e = *c.moe;
        const int64_t expert = 3 * h * e.moe_intermediate_size;
        const double expert_bytes = 3 * tally.linear(e.moe_intermediate_size, h);
        s.routed = e.n_routed_experts * expert;
        s.routed_bytes = double(e.n_routed_experts) * expert_bytes;
        s.routed_active = e.experts_per_token * expert;
        s.routed_active_bytes = double(e.experts_per_token) * expert_bytes;
        if (e.n_shared_experts > 0) {  // one MLP of n_shared × moe_intermediate_size
            const int64_t inner = e.n_shared_experts * e.moe_intermediate_size;
            add_linear(s.mlp, s.mlp_bytes, inner, h);
            add_linear(s.mlp, s.mlp_bytes, inner, h);
            add_linear(s.mlp, s.mlp_bytes, h, inner);
        }
        add_plain(s.mlp, s.mlp_bytes, e.n_routed_experts * h);                            // router
        if (e.topk_method == TopkMethod::NoAuxTc) add_plain(s.mlp, s.mlp_bytes, e.n_routed_experts);  // score bias
    } else {
        add_linear(s.mlp, s.mlp_bytes, c.intermediate_size, h);
        add_linear(s.mlp, s.mlp_bytes, c.intermediate_size, h);
        add_linear(s.mlp, s.mlp_bytes, h, c.intermediate_size);
    }
    return s;
}

}  // namespace

std::string weight_format_name(WeightFormat format, const ModelConfig& config) {
    switch (format) {
        case WeightFormat::Checkpoint: return config.fp8 ? "FP8" : "BF16";
        case WeightFormat::Bf16: return "BF16";
        case WeightFormat::Int8: return "INT8";
        case WeightFormat::Int4: return "INT4";
    }
    return "?";
}

WeightInventory weight_inventory(const ModelConfig& c, WeightFormat format) {
    const Tally tally(c, format);
    WeightInventory w;
    const int64_t embedding = c.vocab_size * c.hidden_size;
    w.other_parameters = embedding + (c.tie_word_embeddings ? 0 : embedding) + c.hidden_size;
    w.other_bytes = Tally::plain(w.other_parameters);
    w.active_parameters = w.other_parameters;
    w.active_bytes = w.other_bytes;
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const LayerSizes s = layer_sizes(c, tally, c.is_moe_layer(l));
        w.other_parameters += s.attention + s.mlp + s.norms;
        w.other_bytes += s.attention_bytes + s.mlp_bytes + s.norm_bytes;
        w.routed_expert_parameters += s.routed;
        w.routed_expert_bytes += s.routed_bytes;
        w.active_parameters += s.attention + s.mlp + s.norms + s.routed_active;
        w.active_bytes += s.attention_bytes + s.mlp_bytes + s.norm_bytes + s.routed_active_bytes;
    }
    // Each MTP module: its own copies of the embedding and output head, two norms and the projection that joins
    // them, a decoder layer (MoE in V3), and the head's norm.
    for (int64_t m = 0; m < c.mtp_layers; ++m) {
        const LayerSizes s = layer_sizes(c, tally, c.moe.has_value());
        const int64_t plain = 2 * embedding + 3 * c.hidden_size;
        w.mtp_parameters += plain + 2 * c.hidden_size * c.hidden_size + s.attention + s.mlp + s.norms + s.routed;
        w.mtp_bytes += Tally::plain(plain) + tally.linear(c.hidden_size, 2 * c.hidden_size) + s.attention_bytes + s.mlp_bytes +
                       s.norm_bytes + s.routed_bytes;
        w.mtp_routed_expert_parameters += s.routed;
        w.mtp_routed_expert_bytes += s.routed_bytes;
    }
    return w;
}

int64_t kv_cache_bytes_per_token(const ModelConfig& config) { return config.kv_cache_values_per_token() * 2; }

}  // namespace mwb::deploy
