#include "engine/model/random_weights.h"

#include <cmath>
#include <cstdint>
#include <random>

namespace mwb {

ModelConfig reference_shape_v3_16b(int64_t layers) {
    ModelConfig c;
    c.architecture = Architecture::DeepseekV3;
    c.vocab_size = 129280;
    c.hidden_size = 2048;
    c.intermediate_size = 10944;
    c.num_layers = layers;
    c.num_heads = 16;
    c.num_kv_heads = 16;
    c.max_position_embeddings = 163840;
    c.rms_norm_eps = 1e-6;
    c.bos_token_id = 0;
    c.eos_token_ids = {1};
    c.torch_dtype = "bfloat16";
    c.mla = MlaConfig{1536, 512, 128, 64, 128};
    MoeConfig moe;
    moe.n_routed_experts = 64;
    moe.n_shared_experts = 2;
    moe.experts_per_token = 6;
    moe.moe_intermediate_size = 1408;
    moe.first_k_dense_replace = 1;
    moe.routed_scaling_factor = 2.5;
    moe.scoring = ScoringFunction::Sigmoid;
    moe.topk_method = TopkMethod::NoAuxTc;
    moe.n_group = 8;
    moe.topk_group = 4;
    moe.norm_topk_prob = true;
    c.moe = moe;
    c.rope.theta = 10000.0;
    c.rope.scaling = RopeScaling::Yarn;
    c.rope.factor = 40.0;
    c.rope.original_max_position_embeddings = 4096;
    c.rope.mscale = 1.0;
    c.rope.mscale_all_dim = 1.0;
    return c;
}

Result<ModelConfig> named_shape(const std::string& name, int64_t layers) {
    if (layers <= 0) return make_error("--layers must be at least 1");
    if (name == "v3-16b") return reference_shape_v3_16b(layers);
    return make_error("unknown shape '" + name + "' (known: v3-16b)");
}

namespace {

class WeightWriter {
public:
    explicit WeightWriter(uint64_t seed) : random_(seed) {}

    void matrix(const std::string& name, int64_t rows, int64_t cols) {
        const float bound = 1.0f / std::sqrt(float(cols));
        fill(name, {rows, cols}, [&] { return (uniform() * 2.0f - 1.0f) * bound; });
    }
    void ones(const std::string& name, int64_t size) { fill(name, {size}, [] { return 1.0f; }); }
    void small(const std::string& name, int64_t size) { fill(name, {size}, [&] { return (uniform() - 0.5f) * 0.02f; }); }
    std::vector<TensorToWrite> take() { return std::move(tensors_); }

private:
    template <class Next>
    void fill(const std::string& name, std::vector<int64_t> shape, Next next) {
        int64_t count = 1;
        for (int64_t d : shape) count *= d;
        TensorToWrite t{name, DType::BF16, std::move(shape), std::vector<uint8_t>(size_t(count) * 2)};
        auto* bits = reinterpret_cast<uint16_t*>(t.bytes.data());
        for (int64_t i = 0; i < count; ++i) bits[i] = float_to_bf16(next());
        tensors_.push_back(std::move(t));
    }
    float uniform() { return float(random_() >> 40) * 0x1.0p-24f; }

    std::mt19937_64 random_;
    std::vector<TensorToWrite> tensors_;
};

void write_mlp(WeightWriter& w, const std::string& prefix, int64_t hidden, int64_t inner) {
    w.matrix(prefix + ".gate_proj.weight", inner, hidden);
    w.matrix(prefix + ".up_proj.weight", inner, hidden);
    w.matrix(prefix + ".down_proj.weight", hidden, inner);
}

}  // namespace

std::vector<TensorToWrite> random_weights(const ModelConfig& c, uint64_t seed) {
    WeightWriter w(seed);
    const int64_t hidden = c.hidden_size;
    w.matrix("model.embed_tokens.weight", c.vocab_size, hidden);
    for (int64_t layer = 0; layer < c.num_layers; ++layer) {
        const std::string p = "model.layers." + std::to_string(layer);
        w.ones(p + ".input_layernorm.weight", hidden);
        w.ones(p + ".post_attention_layernorm.weight", hidden);
        if (c.mla) {
            const MlaConfig& m = *c.mla;
            const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
            if (m.q_lora_rank) {
                w.matrix(p + ".self_attn.q_a_proj.weight", *m.q_lora_rank, hidden);
                w.ones(p + ".self_attn.q_a_layernorm.weight", *m.q_lora_rank);
                w.matrix(p + ".self_attn.q_b_proj.weight", c.num_heads * qk, *m.q_lora_rank);
            } else {
                w.matrix(p + ".self_attn.q_proj.weight", c.num_heads * qk, hidden);
            }
            w.matrix(p + ".self_attn.kv_a_proj_with_mqa.weight", m.kv_lora_rank + m.qk_rope_head_dim, hidden);
            w.ones(p + ".self_attn.kv_a_layernorm.weight", m.kv_lora_rank);
            w.matrix(p + ".self_attn.kv_b_proj.weight", c.num_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank);
            w.matrix(p + ".self_attn.o_proj.weight", hidden, c.num_heads * m.v_head_dim);
        } else {
            const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
            w.matrix(p + ".self_attn.q_proj.weight", q, hidden);
            w.matrix(p + ".self_attn.k_proj.weight", kv, hidden);
            w.matrix(p + ".self_attn.v_proj.weight", kv, hidden);
            if (c.qkv_bias) {
                w.small(p + ".self_attn.q_proj.bias", q);
                w.small(p + ".self_attn.k_proj.bias", kv);
                w.small(p + ".self_attn.v_proj.bias", kv);
            }
            w.matrix(p + ".self_attn.o_proj.weight", hidden, q);
        }
        if (c.is_moe_layer(layer)) {
            const MoeConfig& moe = *c.moe;
            w.matrix(p + ".mlp.gate.weight", moe.n_routed_experts, hidden);
            if (moe.topk_method == TopkMethod::NoAuxTc) w.small(p + ".mlp.gate.e_score_correction_bias", moe.n_routed_experts);
            for (int64_t e = 0; e < moe.n_routed_experts; ++e)
                write_mlp(w, p + ".mlp.experts." + std::to_string(e), hidden, moe.moe_intermediate_size);
            if (moe.n_shared_experts > 0)
                write_mlp(w, p + ".mlp.shared_experts", hidden, moe.moe_intermediate_size * moe.n_shared_experts);
        } else {
            write_mlp(w, p + ".mlp", hidden, c.intermediate_size);
        }
    }
    w.ones("model.norm.weight", hidden);
    if (!c.tie_word_embeddings) w.matrix("lm_head.weight", c.vocab_size, hidden);
    return w.take();
}

Result<std::shared_ptr<const ModelGraph>> random_model(const ModelConfig& config, uint64_t seed) {
    auto store = TensorStore::from_memory(random_weights(config, seed));
    if (!store) return store.error();
    auto graph = build_model_graph(config, std::make_shared<const TensorStore>(std::move(store.value())));
    if (!graph) return graph.error();
    return std::make_shared<const ModelGraph>(std::move(graph.value()));
}

}  // namespace mwb
