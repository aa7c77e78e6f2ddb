#include "plugins/export/model_files.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "engine/core/text_file.h"
#include "engine/runtime/generation_config.h"

namespace mwb::exporters {

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
    auto text = read_text_file(path.string());
    return text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
}

bool has(const std::string& text, const char* marker) { return text.find(marker) != std::string::npos; }

}  // namespace

ModelFiles read_model_files(const std::string& model_directory) {
    ModelFiles files;
    if (model_directory.empty()) return files;
    const std::filesystem::path dir(model_directory);
    const nlohmann::json tokenizer = read_json(dir / "tokenizer_config.json");
    if (tokenizer.is_object() && tokenizer.contains("chat_template") && tokenizer["chat_template"].is_string())
        files.chat_template = tokenizer["chat_template"].get<std::string>();
    if (auto jinja = read_text_file((dir / "chat_template.jinja").string())) files.chat_template = *jinja;
    const std::string& t = files.chat_template;
    // The families differ in their turn markers; DeepSeek writes its markers with full-width bars.
    if (has(t, "<｜Assistant｜>")) {
        files.family = TemplateFamily::DeepseekV3;
        files.stop = {"<｜end▁of▁sentence｜>"};
    } else if (has(t, "<|im_start|>")) {
        files.family = TemplateFamily::Qwen2;
        files.stop = {"<|im_end|>"};
    } else if (has(t, "<|start_header_id|>")) {
        files.family = TemplateFamily::Llama3;
        files.stop = {"<|eot_id|>"};
    } else if (has(t, "Assistant:") && has(t, "User: ")) {
        files.family = TemplateFamily::DeepseekV2;
        files.stop = {"<｜end▁of▁sentence｜>"};
    }
    files.reasons = has(t, "<think>");
    if (auto generation = load_generation_config(model_directory); generation && *generation) {
        files.temperature = (*generation)->do_sample == false ? std::optional<double>(0.0) : (*generation)->temperature;
        files.top_p = (*generation)->top_p;
        if ((*generation)->top_k) files.top_k = (long long)(*(*generation)->top_k);
    }
    return files;
}

}  // namespace mwb::exporters
