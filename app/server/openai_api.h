// The OpenAI-compatible wire format: request bodies of /v1/chat/completions and /v1/completions read and
// checked into typed parameters, and the JSON of responses, stream chunks and error objects.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/runtime/generation.h"
#include "engine/runtime/sampler.h"
#include "engine/tokenizer/chat_template.h"

namespace mwb::serve {

// An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with its HTTP status.
struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // the offending field, when there is one
    std::string code;
};
std::string error_body(const ApiError& error);

struct CompletionParams {
    bool chat = true;
    std::string model;                      // empty when the request named none
    std::vector<tok::ChatMessage> messages; // chat
    std::vector<std::vector<std::string>> images;  // chat: per message, its images' base64 (data URLs' payloads)
    std::string prompt_text;                // completions, as text
    std::vector<int32_t> prompt_ids;        // completions, as token ids
    bool stream = false;
    bool include_usage = false;
    std::optional<int64_t> max_tokens;
    SamplingParams sampling;
    std::vector<std::string> stop;
    bool ignore_eos = false;  // vLLM's extension: generate max_tokens whatever the model says (benchmarks)
};

// Reads a request body; `defaults` fills the sampling fields the request leaves out.
std::optional<ApiError> parse_completion_request(std::string_view body, bool chat, const SamplingParams& defaults,
                                                 CompletionParams& out);

// Splits an R1-style reply into reasoning (inside <think>…</think>) and answer as the text streams in.
class ReasoningSplitter {
public:
    explicit ReasoningSplitter(bool starts_in_reasoning) : state_(starts_in_reasoning ? State::Reasoning : State::Opening) {}
    struct Delta {
        std::string reasoning, content;
    };
    Delta push(std::string_view text);
    Delta finish();
    bool saw_reasoning() const { return saw_reasoning_; }

private:
    enum class State { Opening, Reasoning, Content };
    State state_;
    std::string pending_;
    bool saw_reasoning_ = false;
};

struct ResponseHead {
    std::string id;  // chatcmpl-… or cmpl-…
    int64_t created = 0;
    std::string model;
    bool chat = true;
};

struct Usage {
    int64_t prompt_tokens = 0, completion_tokens = 0;
    double time_to_first_token_s = 0, decode_tokens_per_s = 0;
};

// "stop" or "length", as OpenAI names why a completion ended.
std::string openai_finish_reason(FinishReason reason);

nlohmann::json usage_json(const Usage& usage);
nlohmann::json full_response(const ResponseHead& head, const std::string& content, const std::string& reasoning,
                             FinishReason finish, const Usage& usage);
// One `data:` chunk of a stream; `finish` and `usage` only on the last.
nlohmann::json stream_chunk(const ResponseHead& head, const std::string& content, const std::string& reasoning, bool first,
                            std::optional<FinishReason> finish = std::nullopt, const Usage* usage = nullptr);
// The usage-only chunk that `stream_options.include_usage` asks for (empty choices).
nlohmann::json usage_chunk(const ResponseHead& head, const Usage& usage);

}  // namespace mwb::serve
