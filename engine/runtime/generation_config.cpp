#include "engine/runtime/generation_config.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "engine/core/text_file.h"

namespace mwb {

Result<GenerationConfig> parse_generation_config(std::string_view json_text) {
    nlohmann::json root;
    try {
        root = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::parse_error& error) {
        return make_error(std::string("generation_config.json is not JSON: ") + error.what());
    }
    if (!root.is_object()) return make_error("generation_config.json is not a JSON object");
    GenerationConfig config;
    auto number = [&](const char* key, std::optional<double>& out) {
        if (auto it = root.find(key); it != root.end() && it->is_number()) out = it->get<double>();
    };
    number("temperature", config.temperature);
    number("top_p", config.top_p);
    number("top_k", config.top_k);
    number("min_p", config.min_p);
    number("repetition_penalty", config.repetition_penalty);
    number("max_new_tokens", config.max_new_tokens);
    if (auto it = root.find("do_sample"); it != root.end() && it->is_boolean()) config.do_sample = it->get<bool>();
    return config;
}

Result<std::optional<GenerationConfig>> load_generation_config(const std::string& model_directory) {
    const std::filesystem::path path = std::filesystem::path(model_directory) / "generation_config.json";
    if (!std::filesystem::exists(path)) return std::optional<GenerationConfig>();
    auto text = read_text_file(path.string());
    if (!text) return text.error();
    auto config = parse_generation_config(*text);
    if (!config) return config.error();
    return std::optional<GenerationConfig>(std::move(config.value()));
}

Result<SamplingParams> sampling_from(const GenerationConfig& config, SamplingParams s) {
    s.temperature = config.temperature.value_or(s.temperature);
    s.top_p = config.top_p.value_or(s.top_p);
    s.top_k = config.top_k ? int64_t(*config.top_k) : s.top_k;
    s.min_p = config.min_p.value_or(s.min_p);
    s.repetition_penalty = config.repetition_penalty.value_or(s.repetition_penalty);
    if (config.do_sample == false) s.temperature = 0;
    if (s.temperature < 0 || s.top_p <= 0 || s.top_p > 1 || s.top_k < 0 || s.min_p < 0 || s.min_p > 1 || s.repetition_penalty <= 0)
        return make_error("generation_config.json has sampling values out of range");
    return s;
}

}  // namespace mwb
