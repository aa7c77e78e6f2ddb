// config.json of a Hugging Face checkpoint, in the spelling of the released DeepSeek / Qwen2 / Llama models, and
// of DeepSeek-VL (a SigLIP vision tower in front of one of those language models).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace mwb {

enum class Architecture { DeepseekV3, DeepseekV2, Qwen2, Llama, DeepseekVL };

std::string architecture_name(Architecture architecture);  // the model_type spelling

enum class RopeScaling { None, Linear, Yarn, Llama3 };

struct RopeConfig {
    double theta = 10000.0;
    RopeScaling scaling = RopeScaling::None;
    double factor = 1.0;
    int64_t original_max_position_embeddings = 0;
    double beta_fast = 32.0, beta_slow = 1.0;       // yarn
    double mscale = 1.0, mscale_all_dim = 0.0;      // yarn (DeepSeek)
    double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
};

enum class ScoringFunction { Softmax, Sigmoid };
enum class TopkMethod { Greedy, GroupLimitedGreedy, NoAuxTc };

struct MoeConfig {
    int64_t n_routed_experts = 0;
    int64_t n_shared_experts = 0;
    int64_t experts_per_token = 0;
    int64_t moe_intermediate_size = 0;
    int64_t first_k_dense_replace = 0;
    int64_t moe_layer_freq = 1;
    double routed_scaling_factor = 1.0;
    ScoringFunction scoring = ScoringFunction::Softmax;
    TopkMethod topk_method = TopkMethod::Greedy;
    int64_t n_group = 1;
    int64_t topk_group = 1;
    bool norm_topk_prob = false;
};

struct MlaConfig {
    std::optional<int64_t> q_lora_rank;  // null in V2-Lite: a plain q_proj
    int64_t kv_lora_rank = 0;
    int64_t qk_nope_head_dim = 0;
    int64_t qk_rope_head_dim = 0;
    int64_t v_head_dim = 0;
};

struct Fp8Config {
    int64_t block_rows = 128, block_cols = 128;
};

enum class VisionActivation { GeluTanh, GeluErf };  // hidden_act gelu_pytorch_tanh, gelu

// vision_config of deepseek_vl: a SigLIP vision transformer (SiglipVisionConfig, whose defaults fill missing keys).
struct VisionConfig {
    int64_t hidden_size = 768;
    int64_t intermediate_size = 3072;
    int64_t num_layers = 12;
    int64_t num_heads = 12;
    int64_t num_channels = 3;
    int64_t image_size = 224;  // pixels per side of the square input
    int64_t patch_size = 16;
    double layer_norm_eps = 1e-6;
    VisionActivation activation = VisionActivation::GeluTanh;

    int64_t head_dim() const { return hidden_size / num_heads; }
    int64_t patches_per_image() const { return (image_size / patch_size) * (image_size / patch_size); }
};

// What deepseek_vl adds to its language model: the images' tower and the token that stands for an image patch.
struct VisionLanguageConfig {
    Architecture text_architecture = Architecture::Llama;  // model_type of text_config
    VisionConfig vision;
    int64_t image_token_id = 0;
};

struct ModelConfig {
    Architecture architecture = Architecture::Llama;
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_layers = 0;
    int64_t num_heads = 0;
    int64_t num_kv_heads = 0;
    int64_t head_dim = 0;  // GQA models
    int64_t max_position_embeddings = 0;
    double rms_norm_eps = 1e-6;
    bool tie_word_embeddings = false;
    bool qkv_bias = false;  // qwen2
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;
    std::string torch_dtype;
    RopeConfig rope;
    std::optional<MlaConfig> mla;  // DeepSeek V2/V3
    std::optional<MoeConfig> moe;  // DeepSeek V2/V3
    std::optional<Fp8Config> fp8;  // quantization_config quant_method fp8
    int64_t mtp_layers = 0;        // num_nextn_predict_layers: DeepSeek-V3's multi-token-prediction modules
    // deepseek_vl: the fields above describe text_config, the language model.
    std::optional<VisionLanguageConfig> vision_language;

    bool is_moe_layer(int64_t layer) const;
    // Softmax scale of attention (1/sqrt(d), with DeepSeek's YaRN mscale² when present).
    double attention_scale() const;
    // Values the KV cache keeps per token over all layers: the MLA latent + rope key, or per-head K and V.
    int64_t kv_cache_values_per_token() const;
};

// Parses the text of config.json; `source` names the file in error messages.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source = "config.json");
Result<ModelConfig> load_model_config(const std::string& model_directory);

}  // namespace mwb
