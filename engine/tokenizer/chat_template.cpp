#include "engine/tokenizer/chat_template.h"

#include <ctime>

namespace mwb::tok {

TemplateJson ChatMessage::to_json() const {
    TemplateJson message = TemplateJson::object();
    message["role"] = role;
    message["content"] = content ? TemplateJson(*content) : TemplateJson(nullptr);
    if (reasoning_content) message["reasoning_content"] = *reasoning_content;
    if (!tool_calls.is_null()) message["tool_calls"] = tool_calls;
    if (extra_fields.is_object())
        for (auto it = extra_fields.begin(); it != extra_fields.end(); ++it) message[it.key()] = it.value();
    return message;
}

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
    auto parsed = jinja::Template::parse(source);
    if (!parsed) return parsed.error();
    ChatTemplate result;
    result.template_ = std::move(parsed.value());
    return result;
}

Result<std::string> ChatTemplate::render(const TemplateJson& messages, bool add_generation_prompt,
                                         const TemplateJson& special_tokens, const TemplateJson& extra) const {
    if (!messages.is_array()) return make_error("chat template: messages must be a JSON array");
    if (!extra.is_null() && !extra.is_object()) return make_error("chat template: extra values must be a JSON object");
    std::vector<std::pair<std::string, jinja::Value>> variables;
    variables.emplace_back("messages", jinja::Value::from_json(messages));
    variables.emplace_back("tools", jinja::Value(nullptr));
    variables.emplace_back("documents", jinja::Value(nullptr));
    variables.emplace_back("add_generation_prompt", jinja::Value(add_generation_prompt));
    if (special_tokens.is_object())
        for (auto it = special_tokens.begin(); it != special_tokens.end(); ++it)
            variables.emplace_back(it.key(), jinja::Value::from_json(it.value()));
    if (extra.is_object())
        for (auto it = extra.begin(); it != extra.end(); ++it)
            variables.emplace_back(it.key(), jinja::Value::from_json(it.value()));
    variables.emplace_back("raise_exception", jinja::Value::function("raise_exception", [](jinja::CallArgs& args) -> jinja::Value {
        std::string message = args.positional.empty() ? std::string() : args.positional[0].str();
        throw jinja::RenderError("raise_exception: " + message);
    }));
    variables.emplace_back("strftime_now", jinja::Value::function("strftime_now", [](jinja::CallArgs& args) {
        if (args.positional.empty() || !args.positional[0].is_string())
            throw jinja::RenderError("strftime_now expects a format string");
        std::time_t now = std::time(nullptr);
        std::tm local{};
        localtime_r(&now, &local);
        char buffer[256];
        size_t length = std::strftime(buffer, sizeof(buffer), args.positional[0].as_string().c_str(), &local);
        return jinja::Value(std::string(buffer, length));
    }));
    return template_.render(variables);
}

}  // namespace mwb::tok
