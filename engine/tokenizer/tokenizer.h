// A Hugging Face tokenizer loaded from tokenizer.json (+ tokenizer_config.json): encode, decode, special
// tokens and the chat template, matching the ids and text of `transformers`.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.h"
#include "engine/tokenizer/chat_template.h"

namespace mwb::tok {

// Immutable once loaded; copies share the loaded data and may be used from several threads at once.
class Tokenizer {
public:
    // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json and DIR/chat_template.jinja.
    static Result<Tokenizer> load(const std::string& directory);
    // `tokenizer_config_json` may be empty.
    static Result<Tokenizer> from_json(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                                       const std::string& chat_template_source = "");

    // Fails only on input that is not valid UTF-8 or when an unknown character needs a missing unk token.
    Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens) const;
    // Unknown ids are skipped, as Hugging Face tokenizers does.
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

    std::optional<int32_t> token_to_id(std::string_view token) const;
    std::optional<std::string> id_to_token(int32_t id) const;
    bool is_special(int32_t id) const;
    // One past the largest token id (vocabulary plus added tokens).
    size_t vocab_size() const;

    // From tokenizer_config.json.
    std::optional<int32_t> bos_id() const;
    std::vector<int32_t> eos_ids() const;

    bool has_chat_template() const;
    Result<std::string> apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                            const TemplateJson& extra = TemplateJson::object()) const;
    // `messages` is an OpenAI-style array of message objects; `extra` may hold "tools" and any other variable.
    Result<std::string> apply_chat_template_json(const TemplateJson& messages, bool add_generation_prompt,
                                                 const TemplateJson& extra = TemplateJson::object()) const;

private:
    struct Impl;
    // from_json without its guard against exceptions that no check names.
    static Result<Tokenizer> build(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                                   const std::string& chat_template_source);
    std::shared_ptr<const Impl> impl_;
};

}  // namespace mwb::tok
