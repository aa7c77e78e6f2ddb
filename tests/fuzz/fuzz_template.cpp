// libFuzzer: chat templates (tokenizer_config.json's chat_template), parsed and rendered over a conversation
// with a system prompt, a tool call and a generation prompt.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto parsed = mwb::tok::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size));
    if (!parsed.ok()) return 0;
    static const auto messages = mwb::tok::TemplateJson::parse(R"([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": "{\"a\": 2}"}}]},
        {"role": "tool", "content": "4"},
        {"role": "assistant", "content": "<think>easy</think>4"}])");
    static const auto special = mwb::tok::TemplateJson::parse(R"({"bos_token": "<s>", "eos_token": "</s>"})");
    (void)parsed->render(messages, true, special, mwb::tok::TemplateJson::object());
    return 0;
}
