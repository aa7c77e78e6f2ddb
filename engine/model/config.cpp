#include "engine/model/config.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "engine/core/text_file.h"

namespace mwb {

std::string architecture_name(Architecture architecture) {
    switch (architecture) {
        case Architecture::DeepseekV3: return "deepseek_v3";
        case Architecture::DeepseekV2: return "deepseek_v2";
        case Architecture::Qwen2: return "qwen2";
        case Architecture::Llama: return "llama";
        case Architecture::DeepseekVL: return "deepseek_vl";
    }
    return "?";
}

namespace {

using nlohmann::json;

// Reads typed keys from one JSON object and remembers the first problem, so that parsing reads top-down.
class KeyReader {
public:
    KeyReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

    int64_t integer(const char* key) {
        if (!present(key)) return 0;
        const json& v = object_[key];
        if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())) {
            fail(std::string("key ") + key + " must be an integer");
            return 0;
        }
        // Beyond int64 the conversion is undefined: refuse, with the number as written.
        const bool too_large = (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) ||
                               (v.is_number_float() && std::fabs(v.get<double>()) >= 9.2e18);
        if (too_large) {
            fail(std::string("key ") + key + " is out of range (" + v.dump() + ")");
            return 0;
        }
        return v.get<int64_t>();
    }
    int64_t positive(const char* key) {
        int64_t value = integer(key);
        if (!error_ && value <= 0) fail(std::string("key ") + key + " must be positive, got " + std::to_string(value));
        return value;
    }
    int64_t integer_or(const char* key, int64_t fallback) { return has(key) ? integer(key) : fallback; }
    // A number in [low, high] (the low end open when `low_open`), else an error that names the key and the range.
    double bounded(const char* key, double value, double low, double high, bool low_open) {
        if (!error_ && ((low_open ? value <= low : value < low) || value > high)) {
            auto text = [](double v) {
                char buffer[32];
                std::snprintf(buffer, sizeof buffer, "%g", v);
                return std::string(buffer);
            };
            fail(std::string("key ") + key + " is " + text(value) + ", outside " + (low_open ? "(" : "[") + text(low) + ", " + text(high) + "]");
        }
        return value;
    }
    double number_or(const char* key, double fallback) {
        if (!has(key)) return fallback;
        if (!object_[key].is_number() || !std::isfinite(object_[key].get<double>())) {
            fail(std::string("key ") + key + " must be a finite number");
            return fallback;
        }
        return object_[key].get<double>();
    }
    double number(const char* key) {
        if (!present(key)) return 0;
        return number_or(key, 0);
    }
    bool boolean_or(const char* key, bool fallback) {
        if (!has(key)) return fallback;
        if (!object_[key].is_boolean()) {
            fail(std::string("key ") + key + " must be true or false");
            return fallback;
        }
        return object_[key].get<bool>();
    }
    std::string string_or(const char* key, const std::string& fallback) {
        if (!has(key)) return fallback;
        if (!object_[key].is_string()) {
            fail(std::string("key ") + key + " must be a string");
            return fallback;
        }
        return object_[key].get<std::string>();
    }
    bool has(const char* key) const { return object_.contains(key) && !object_[key].is_null(); }
    void fail(const std::string& message) {
        if (!error_) error_ = make_error(where_ + ": " + message);
    }
    const std::optional<Error>& error() const { return error_; }

private:
    bool present(const char* key) {
        if (has(key)) return true;
        fail(std::string("key ") + key + " is missing");
        return false;
    }
    const json& object_;
    std::string where_;
    std::optional<Error> error_;
};

void parse_rope(KeyReader& top, const json& root, const std::string& source, ModelConfig& config) {
    config.rope.theta = top.bounded("rope_theta", top.number_or("rope_theta", 10000.0), 0.0, 1e12, true);
    if (!root.contains("rope_scaling") || root["rope_scaling"].is_null()) return;
    const json& scaling = root["rope_scaling"];
    if (!scaling.is_object()) {
        top.fail("key rope_scaling must be an object or null");
        return;
    }
    KeyReader r(scaling, source + ": rope_scaling");
    std::string type = r.string_or("rope_type", r.string_or("type", ""));
    RopeConfig& rope = config.rope;
    if (type == "default" || type.empty()) return;
    rope.factor = r.number("factor");
    if (type == "linear") {
        rope.scaling = RopeScaling::Linear;
    } else if (type == "yarn") {
        rope.scaling = RopeScaling::Yarn;
        rope.original_max_position_embeddings = r.integer_or("original_max_position_embeddings", config.max_position_embeddings);
        rope.beta_fast = r.number_or("beta_fast", 32.0);
        rope.beta_slow = r.number_or("beta_slow", 1.0);
        rope.mscale = r.number_or("mscale", 1.0);
        rope.mscale_all_dim = r.number_or("mscale_all_dim", 0.0);
    } else if (type == "llama3") {
        rope.scaling = RopeScaling::Llama3;
        rope.original_max_position_embeddings = r.integer("original_max_position_embeddings");
        rope.low_freq_factor = r.number("low_freq_factor");
        rope.high_freq_factor = r.number("high_freq_factor");
    } else {
        r.fail("rope type '" + type + "' is not supported (supported: linear, yarn, llama3)");
    }
    if (!r.error() && rope.factor <= 0) r.fail("factor must be positive");
    if (!r.error() && rope.scaling != RopeScaling::Linear && rope.original_max_position_embeddings <= 0)
        r.fail("original_max_position_embeddings must be positive");
    if (r.error()) top.fail(r.error()->message.substr(source.size() + 2));
}

void parse_deepseek(KeyReader& r, const json& root, ModelConfig& config) {
    MlaConfig mla;
    if (r.has("q_lora_rank")) mla.q_lora_rank = r.positive("q_lora_rank");
    mla.kv_lora_rank = r.positive("kv_lora_rank");
    mla.qk_nope_head_dim = r.positive("qk_nope_head_dim");
    mla.qk_rope_head_dim = r.positive("qk_rope_head_dim");
    mla.v_head_dim = r.positive("v_head_dim");
    if (mla.qk_rope_head_dim % 2) r.fail("qk_rope_head_dim must be even");
    config.mla = mla;

    MoeConfig moe;
    moe.n_routed_experts = r.integer_or("n_routed_experts", 0);
    if (moe.n_routed_experts > 0) {
        moe.n_shared_experts = r.integer_or("n_shared_experts", 0);
        if (moe.n_shared_experts < 0) r.fail("key n_shared_experts must not be negative");
        moe.experts_per_token = r.positive("num_experts_per_tok");
        moe.moe_intermediate_size = r.positive("moe_intermediate_size");
        moe.first_k_dense_replace = r.integer_or("first_k_dense_replace", 0);
        moe.moe_layer_freq = r.integer_or("moe_layer_freq", 1);
        moe.routed_scaling_factor = r.bounded("routed_scaling_factor", r.number_or("routed_scaling_factor", 1.0), 0.0, 1000.0, true);
        moe.n_group = r.integer_or("n_group", 1);
        moe.topk_group = r.integer_or("topk_group", 1);
        moe.norm_topk_prob = r.boolean_or("norm_topk_prob", false);
        const bool v3 = config.architecture == Architecture::DeepseekV3;
        std::string scoring = r.string_or("scoring_func", v3 ? "sigmoid" : "softmax");
        if (scoring == "sigmoid") moe.scoring = ScoringFunction::Sigmoid;
        else if (scoring == "softmax") moe.scoring = ScoringFunction::Softmax;
        else r.fail("scoring_func '" + scoring + "' is not supported (sigmoid, softmax)");
        std::string method = r.string_or("topk_method", v3 ? "noaux_tc" : "greedy");
        if (method == "greedy") moe.topk_method = TopkMethod::Greedy;
        else if (method == "group_limited_greedy") moe.topk_method = TopkMethod::GroupLimitedGreedy;
        else if (method == "noaux_tc") moe.topk_method = TopkMethod::NoAuxTc;
        else r.fail("topk_method '" + method + "' is not supported (greedy, group_limited_greedy, noaux_tc)");
        if (moe.moe_layer_freq <= 0) r.fail("moe_layer_freq must be positive");
        if (moe.n_group <= 0 || moe.n_routed_experts % moe.n_group)
            r.fail("n_routed_experts (" + std::to_string(moe.n_routed_experts) + ") must split into n_group (" +
                   std::to_string(moe.n_group) + ") equal groups");
        if (moe.topk_group <= 0 || moe.topk_group > moe.n_group) r.fail("topk_group must be between 1 and n_group");
        if (moe.experts_per_token > moe.n_routed_experts) r.fail("num_experts_per_tok exceeds n_routed_experts");
        if (!r.error() && moe.topk_method != TopkMethod::Greedy &&
            moe.experts_per_token > moe.topk_group * (moe.n_routed_experts / moe.n_group))
            r.fail("num_experts_per_tok exceeds the experts in topk_group groups");
        config.moe = moe;
    }

    config.mtp_layers = r.integer_or("num_nextn_predict_layers", 0);
    if (config.mtp_layers < 0) r.fail("num_nextn_predict_layers must not be negative");

    if (root.contains("quantization_config") && !root["quantization_config"].is_null()) {
        const json& q = root["quantization_config"];
        KeyReader qr(q, "quantization_config");
        std::string method = qr.string_or("quant_method", "");
        if (method != "fp8") {
            r.fail("quantization_config quant_method '" + method + "' is not supported (fp8)");
        } else {
            Fp8Config fp8;
            if (q.contains("weight_block_size")) {
                const json& block = q["weight_block_size"];
                if (!block.is_array() || block.size() != 2 || !block[0].is_number_integer() || !block[1].is_number_integer() ||
                    block[0].get<int64_t>() <= 0 || block[1].get<int64_t>() <= 0)
                    r.fail("quantization_config weight_block_size must be two positive integers");
                else {
                    fp8.block_rows = block[0].get<int64_t>();
                    fp8.block_cols = block[1].get<int64_t>();
                }
            }
            config.fp8 = fp8;
        }
    }
}

}  // namespace

bool ModelConfig::is_moe_layer(int64_t layer) const {
    return moe && layer >= moe->first_k_dense_replace && layer % moe->moe_layer_freq == 0;
}

double ModelConfig::attention_scale() const {
    const double head = mla ? double(mla->qk_nope_head_dim + mla->qk_rope_head_dim) : double(head_dim);
    double scale = 1.0 / std::sqrt(head);
    if (mla && rope.scaling == RopeScaling::Yarn && rope.mscale_all_dim != 0.0 && rope.factor > 1.0) {
        const double m = 0.1 * rope.mscale_all_dim * std::log(rope.factor) + 1.0;
        scale *= m * m;
    }
    return scale;
}

int64_t ModelConfig::kv_cache_values_per_token() const {
    const int64_t per_layer = mla ? mla->kv_lora_rank + mla->qk_rope_head_dim : 2 * num_kv_heads * head_dim;
    return per_layer * num_layers;
}

namespace {

Result<ModelConfig> parse_deepseek_vl(const json& root, const std::string& source);

// One language model's keys: the whole config.json, or the text_config of deepseek_vl.
Result<ModelConfig> parse_config_object(const json& root, const std::string& source) {
    if (!root.is_object()) return make_error(source + " is not a JSON object");
    KeyReader r(root, source);
    ModelConfig config;
    const std::string model_type = r.string_or("model_type", "");
    if (r.error()) return *r.error();
    if (model_type.empty()) return make_error(source + ": key model_type is missing");
    if (model_type == "deepseek_v3") config.architecture = Architecture::DeepseekV3;
    else if (model_type == "deepseek_v2") config.architecture = Architecture::DeepseekV2;
    else if (model_type == "qwen2") config.architecture = Architecture::Qwen2;
    else if (model_type == "llama") config.architecture = Architecture::Llama;
    else if (model_type == "deepseek_vl") return parse_deepseek_vl(root, source);
    else
        return make_error(source + ": model_type '" + model_type +
                          "' is not supported (supported: deepseek_v3, deepseek_v2, qwen2, llama, deepseek_vl)");

    config.vocab_size = r.positive("vocab_size");
    config.hidden_size = r.positive("hidden_size");
    config.intermediate_size = r.positive("intermediate_size");
    config.num_layers = r.positive("num_hidden_layers");
    config.num_heads = r.positive("num_attention_heads");
    config.num_kv_heads = r.has("num_key_value_heads") ? r.positive("num_key_value_heads") : config.num_heads;
    config.max_position_embeddings = r.has("max_position_embeddings") ? r.positive("max_position_embeddings") : 4096;
    config.rms_norm_eps = r.bounded("rms_norm_eps", r.number_or("rms_norm_eps", 1e-6), 0.0, 1.0, true);
    config.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
    config.torch_dtype = r.string_or("torch_dtype", r.string_or("dtype", "bfloat16"));
    if (r.has("bos_token_id")) config.bos_token_id = r.integer("bos_token_id");
    if (r.has("eos_token_id")) {
        const json& eos = root["eos_token_id"];
        if (eos.is_array()) {
            for (const auto& id : eos)
                if (id.is_number_integer()) config.eos_token_ids.push_back(id.get<int64_t>());
                else r.fail("key eos_token_id must hold integers");
        } else {
            config.eos_token_ids.push_back(r.integer("eos_token_id"));
        }
    }
    for (int64_t id : config.eos_token_ids)
        if (!r.error() && (id < 0 || id >= config.vocab_size))
            r.fail("eos_token_id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(config.vocab_size));
    if (!r.error() && config.bos_token_id && (*config.bos_token_id < 0 || *config.bos_token_id >= config.vocab_size))
        r.fail("bos_token_id " + std::to_string(*config.bos_token_id) + " is outside the vocabulary of " + std::to_string(config.vocab_size));
    const std::string activation = r.string_or("hidden_act", "silu");
    if (activation != "silu") r.fail("hidden_act '" + activation + "' is not supported (silu)");

    if (!r.error() && config.num_heads % config.num_kv_heads)
        r.fail("num_attention_heads must be a multiple of num_key_value_heads");
    config.head_dim = r.has("head_dim") ? r.positive("head_dim") : (r.error() ? 0 : config.hidden_size / config.num_heads);
    config.qkv_bias = config.architecture == Architecture::Qwen2 || r.boolean_or("attention_bias", false);

    if (config.architecture == Architecture::DeepseekV3 || config.architecture == Architecture::DeepseekV2)
        parse_deepseek(r, root, config);
    else if (r.has("quantization_config"))
        r.fail("quantization_config is only supported for DeepSeek FP8 checkpoints");
    parse_rope(r, root, source, config);
    if (!config.mla && config.head_dim % 2) r.fail("head_dim must be even for rotary embeddings");
    if (r.error()) return *r.error();
    return config;
}

// vision_config: SigLIP, with SiglipVisionConfig's defaults for missing keys.
VisionConfig parse_vision(KeyReader& top, const json& root, const std::string& source) {
    VisionConfig vision;
    if (!root.contains("vision_config") || root["vision_config"].is_null()) return vision;
    const json& object = root["vision_config"];
    if (!object.is_object()) {
        top.fail("key vision_config must be an object");
        return vision;
    }
    KeyReader r(object, source + ": vision_config");
    const std::string model_type = r.string_or("model_type", "siglip_vision_model");
    if (model_type != "siglip_vision_model") r.fail("model_type '" + model_type + "' is not supported (siglip_vision_model)");
    auto positive_or = [&](const char* key, int64_t fallback) {
        const int64_t value = r.integer_or(key, fallback);
        if (value <= 0) r.fail(std::string("key ") + key + " must be positive, got " + std::to_string(value));
        return value;
    };
    vision.hidden_size = positive_or("hidden_size", vision.hidden_size);
    vision.intermediate_size = positive_or("intermediate_size", vision.intermediate_size);
    vision.num_layers = positive_or("num_hidden_layers", vision.num_layers);
    vision.num_heads = positive_or("num_attention_heads", vision.num_heads);
    vision.num_channels = positive_or("num_channels", vision.num_channels);
    vision.image_size = positive_or("image_size", vision.image_size);
    vision.patch_size = positive_or("patch_size", vision.patch_size);
    vision.layer_norm_eps = r.bounded("layer_norm_eps", r.number_or("layer_norm_eps", vision.layer_norm_eps), 0.0, 1.0, true);
    const std::string activation = r.string_or("hidden_act", "gelu_pytorch_tanh");
    if (activation == "gelu_pytorch_tanh") vision.activation = VisionActivation::GeluTanh;
    else if (activation == "gelu") vision.activation = VisionActivation::GeluErf;
    else r.fail("hidden_act '" + activation + "' is not supported (gelu_pytorch_tanh, gelu)");
    if (!r.error() && vision.num_channels != 3) r.fail("num_channels must be 3 (RGB images)");
    if (!r.error() && vision.hidden_size % vision.num_heads) r.fail("hidden_size must be a multiple of num_attention_heads");
    // Bounds keep every later product (patches × hidden, pixels) far from overflow.
    if (!r.error() && vision.image_size > 8192) r.fail("image_size " + std::to_string(vision.image_size) + " is larger than 8192");
    if (!r.error() && vision.image_size % vision.patch_size)
        r.fail("image_size (" + std::to_string(vision.image_size) + ") must be a multiple of patch_size (" +
               std::to_string(vision.patch_size) + ")");
    if (r.error()) top.fail(r.error()->message.substr(source.size() + 2));
    return vision;
}

// deepseek_vl: text_config is the language model (llama unless it says otherwise), vision_config its SigLIP tower.
Result<ModelConfig> parse_deepseek_vl(const json& root, const std::string& source) {
    KeyReader r(root, source);
    if (!root.contains("text_config") || !root["text_config"].is_object()) return make_error(source + ": key text_config must be an object");
    json text = root["text_config"];
    if (!text.contains("model_type")) text["model_type"] = "llama";
    if (text["model_type"] == "deepseek_vl") return make_error(source + ": text_config cannot itself be deepseek_vl");
    auto config = parse_config_object(text, source + ": text_config");
    if (!config) return config.error();
    VisionLanguageConfig vision_language;
    vision_language.text_architecture = config->architecture;
    vision_language.vision = parse_vision(r, root, source);
    vision_language.image_token_id = r.integer_or("image_token_id", 100015);
    if (!r.error() && (vision_language.image_token_id < 0 || vision_language.image_token_id >= config->vocab_size))
        r.fail("image_token_id " + std::to_string(vision_language.image_token_id) + " is outside the vocabulary of " +
               std::to_string(config->vocab_size));
    if (r.error()) return *r.error();
    config->architecture = Architecture::DeepseekVL;
    config->vision_language = vision_language;
    return config;
}

}  // namespace

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source) {
    json root;
    try {
        root = json::parse(json_text);
    } catch (const json::exception& e) {
        return make_error(source + " is not valid JSON (" + e.what() + ")");
    }
    return parse_config_object(root, source);
}

Result<ModelConfig> load_model_config(const std::string& model_directory) {
    const auto path = std::filesystem::path(model_directory) / "config.json";
    if (!std::filesystem::exists(path)) return make_error("config.json missing in " + model_directory);
    auto text = read_text_file(path.string());
    if (!text) return text.error();
    return parse_model_config(*text, "config.json");
}

}  // namespace mwb
