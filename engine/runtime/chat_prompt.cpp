#include "engine/runtime/chat_prompt.h"

#include <algorithm>
#include <cstdint>

namespace mwb {

Result<std::vector<int32_t>> chat_prompt_ids(const tok::Tokenizer& tokenizer, const std::vector<tok::ChatMessage>& messages) {
    if (!tokenizer.has_chat_template()) {
        std::string text;
        for (const auto& message : messages) text += message.content.value_or("") + "\n";
        return tokenizer.encode(text, true);
    }
    auto rendered = tokenizer.apply_chat_template(messages, /*add_generation_prompt=*/true);
    if (!rendered) return make_error("the model's chat template failed: " + rendered.error().message);
    return tokenizer.encode(*rendered, false);
}

std::vector<int32_t> stop_token_ids(const tok::Tokenizer& tokenizer, const ModelConfig& config) {
    std::vector<int32_t> ids = tokenizer.eos_ids();
    for (int64_t id : config.eos_token_ids)
        if (std::find(ids.begin(), ids.end(), int32_t(id)) == ids.end()) ids.push_back(int32_t(id));
    return ids;
}

}  // namespace mwb
