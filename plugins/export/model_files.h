// What the exporters read from a model folder besides config.json: the chat template and its end-of-turn
// strings, whether the model reasons in <think> blocks, and the sampling of generation_config.json.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mwb::exporters {

enum class TemplateFamily { DeepseekV3, DeepseekV2, Qwen2, Llama3, Unknown };

struct ModelFiles {
    std::string chat_template;  // empty when the folder has none
    TemplateFamily family = TemplateFamily::Unknown;
    bool reasons = false;       // the template opens a <think> block (R1 and its distills)
    std::optional<double> temperature, top_p;
    std::optional<long long> top_k;
    std::vector<std::string> stop;  // end-of-turn strings
};

ModelFiles read_model_files(const std::string& model_directory);

}  // namespace mwb::exporters
