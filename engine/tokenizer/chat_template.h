// A model's chat template rendered the way transformers' apply_chat_template renders it.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.h"
#include "engine/tokenizer/jinja/interpreter.h"

namespace mwb::tok {

// Insertion-ordered JSON, so that tools and arguments keep the order the user wrote them in (tojson).
using TemplateJson = nlohmann::ordered_json;

struct ChatMessage {
    std::string role;
    std::optional<std::string> content;            // nullopt renders as none (an assistant turn with only tool calls)
    std::optional<std::string> reasoning_content;  // left out of the message when nullopt
    TemplateJson tool_calls;                       // left out of the message when null
    TemplateJson extra_fields = TemplateJson::object();  // e.g. "name", "tool_call_id"

    TemplateJson to_json() const;
};

class ChatTemplate {
public:
    static Result<ChatTemplate> parse(std::string_view source);

    // Variables: messages, tools and documents (none unless `extra` gives them), add_generation_prompt,
    // the special tokens (bos_token, eos_token, ... as strings), then every key of `extra`, which wins.
    // Functions: raise_exception(message), strftime_now(format), range, namespace, dict.
    Result<std::string> render(const TemplateJson& messages, bool add_generation_prompt,
                               const TemplateJson& special_tokens, const TemplateJson& extra) const;

private:
    jinja::Template template_;
};

}  // namespace mwb::tok
