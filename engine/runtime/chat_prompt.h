// From a conversation to the ids a model is prompted with, the same way for the CLI and the app.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/config.h"
#include "engine/tokenizer/tokenizer.h"

namespace mwb {

// The model's chat template when it has one — rendered with the generation prompt, then encoded without
// adding special tokens, as transformers does — else the messages' text, one per line, with the tokenizer's
// own special tokens (a base model).
Result<std::vector<int32_t>> chat_prompt_ids(const tok::Tokenizer& tokenizer, const std::vector<tok::ChatMessage>& messages);

// The end-of-sequence ids of the tokenizer and of config.json, each once.
std::vector<int32_t> stop_token_ids(const tok::Tokenizer& tokenizer, const ModelConfig& config);

}  // namespace mwb
