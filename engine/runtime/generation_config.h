// generation_config.json: the sampling a model's authors chose, read the way transformers' GenerationConfig
// reads it. One reader for the app, the server and the exporters.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/core/result.h"
#include "engine/runtime/sampler.h"

namespace mwb {

// The keys as written; absent keys stay empty.
struct GenerationConfig {
    std::optional<double> temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens;
    std::optional<bool> do_sample;
};

// Fails when the text is not a JSON object, with the parser's reason.
Result<GenerationConfig> parse_generation_config(std::string_view json_text);
// nullopt when the folder has no generation_config.json.
Result<std::optional<GenerationConfig>> load_generation_config(const std::string& model_directory);

// The sampling of `config` over `fallback`; greedy when do_sample is false (transformers then ignores the
// model's temperature and top_p). Fails when a value is out of range.
Result<SamplingParams> sampling_from(const GenerationConfig& config, SamplingParams fallback);

}  // namespace mwb
