#include "engine/model/blocks/attention.h"

#include <cstdint>

namespace mwb {

Result<MlaWeights> load_mla(const WeightLoader& loader, const ModelConfig& config, const std::string& prefix) {
    const MlaConfig& mla = *config.mla;
    const int64_t hidden = config.hidden_size, heads = config.num_heads;
    const int64_t qk_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim;
    MlaWeights w;
    if (mla.q_lora_rank) {
        auto q_a = loader.linear(prefix + ".q_a_proj", *mla.q_lora_rank, hidden);
        if (!q_a) return q_a.error();
        auto q_norm = loader.vector(prefix + ".q_a_layernorm.weight", *mla.q_lora_rank);
        if (!q_norm) return q_norm.error();
        auto q_b = loader.linear(prefix + ".q_b_proj", heads * qk_head, *mla.q_lora_rank);
        if (!q_b) return q_b.error();
        w.q_a_proj = *q_a;
        w.q_a_norm = *q_norm;
        w.q_b_proj = *q_b;
    } else {
        auto q = loader.linear(prefix + ".q_proj", heads * qk_head, hidden);
        if (!q) return q.error();
        w.q_proj = *q;
    }
    auto kv_a = loader.linear(prefix + ".kv_a_proj_with_mqa", mla.kv_lora_rank + mla.qk_rope_head_dim, hidden);
    if (!kv_a) return kv_a.error();
    auto kv_norm = loader.vector(prefix + ".kv_a_layernorm.weight", mla.kv_lora_rank);
    if (!kv_norm) return kv_norm.error();
    auto kv_b = loader.linear(prefix + ".kv_b_proj", heads * (mla.qk_nope_head_dim + mla.v_head_dim), mla.kv_lora_rank);
    if (!kv_b) return kv_b.error();
    auto o = loader.linear(prefix + ".o_proj", hidden, heads * mla.v_head_dim);
    if (!o) return o.error();
    w.kv_a_proj = *kv_a;
    w.kv_a_norm = *kv_norm;
    w.kv_b_proj = *kv_b;
    w.o_proj = *o;
    return w;
}

Result<GqaWeights> load_gqa(const WeightLoader& loader, const ModelConfig& config, const std::string& prefix) {
    const int64_t hidden = config.hidden_size, head = config.head_dim;
    auto q = loader.linear(prefix + ".q_proj", config.num_heads * head, hidden, config.qkv_bias);
    if (!q) return q.error();
    auto k = loader.linear(prefix + ".k_proj", config.num_kv_heads * head, hidden, config.qkv_bias);
    if (!k) return k.error();
    auto v = loader.linear(prefix + ".v_proj", config.num_kv_heads * head, hidden, config.qkv_bias);
    if (!v) return v.error();
    auto o = loader.linear(prefix + ".o_proj", hidden, config.num_heads * head);
    if (!o) return o.error();
    return GqaWeights{*q, *k, *v, *o};
}

}  // namespace mwb
