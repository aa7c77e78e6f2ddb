#include "app/server/openai_api.h"

#include <algorithm>
#include <cstdint>

#include "engine/runtime/stop_strings.h"

namespace mwb::serve {

using nlohmann::json;

namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr size_t kMaxStopStrings = 16;

ApiError bad(std::string param, std::string message) {
    ApiError e;
    e.param = std::move(param);
    e.message = std::move(message);
    return e;
}

// Each reader leaves `out` alone when the field is absent and returns an error when it has the wrong type or range.
std::optional<ApiError> read_number(const json& body, const char* name, double low, double high, bool low_open, double& out) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_number()) return bad(name, std::string("'") + name + "' must be a number");
    const double value = it->get<double>();
    if (value < low || value > high || (low_open && value == low))
        return bad(name, std::string("'") + name + "' must be " + (low_open ? "above " : "at least ") + json(low).dump() +
                             " and at most " + json(high).dump() + ", got " + it->dump());
    out = value;
    return std::nullopt;
}

std::optional<ApiError> read_integer(const json& body, const char* name, int64_t low, std::optional<int64_t>& out) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer()) return bad(name, std::string("'") + name + "' must be an integer");
    if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)) return bad(name, std::string("'") + name + "' is too large");
    const int64_t value = it->get<int64_t>();
    if (value < low) return bad(name, std::string("'") + name + "' must be at least " + std::to_string(low) + ", got " + std::to_string(value));
    out = value;
    return std::nullopt;
}

std::optional<ApiError> read_bool(const json& body, const char* name, bool& out) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) return bad(name, std::string("'") + name + "' must be true or false");
    out = it->get<bool>();
    return std::nullopt;
}

// An image part's URL, which must carry the image: "data:image/…;base64,<payload>". Gives the payload.
std::optional<ApiError> read_image_url(const json& part, const std::string& where, std::string& base64) {
    const json* url = nullptr;
    if (auto it = part.find("image_url"); it != part.end()) {
        if (it->is_string()) url = &*it;
        else if (it->is_object() && it->contains("url") && (*it)["url"].is_string()) url = &(*it)["url"];
    }
    if (!url) return bad(where, "an image_url part of '" + where + "' has no 'image_url': {\"url\": \"data:image/png;base64,…\"}");
    const std::string& text = url->get_ref<const std::string&>();
    const size_t marker = text.find(";base64,");
    if (text.rfind("data:image/", 0) != 0 || marker == std::string::npos)
        return bad(where, "an image_url of '" + where + "' is not a base64 data URL (data:image/png;base64,…); this server fetches "
                          "nothing from the network, so send the image itself");
    base64 = text.substr(marker + 8);
    return std::nullopt;
}

// A message's content: a string, or an array of {"type": "text", "text": …} parts joined, and
// {"type": "image_url", …} parts, whose images go to `images`.
std::optional<ApiError> read_content(const json& content, size_t index, std::optional<std::string>& out, std::vector<std::string>& images) {
    const std::string where = "messages[" + std::to_string(index) + "].content";
    if (content.is_null()) return std::nullopt;
    if (content.is_string()) {
        out = content.get<std::string>();
        return std::nullopt;
    }
    if (!content.is_array()) return bad(where, "'" + where + "' must be a string or an array of text and image_url parts");
    std::string text;
    for (const auto& part : content) {
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
            return bad(where, "each part of '" + where + "' must be an object with a 'type'");
        const std::string type = part["type"].get<std::string>();
        if (type == "image_url") {
            if (auto error = read_image_url(part, where, images.emplace_back())) return error;
            continue;
        }
        if (type != "text")
            return bad(where, "'" + where + "' has a part of type '" + type + "'; this server reads text and image_url parts");
        if (!part.contains("text") || !part["text"].is_string()) return bad(where, "a text part of '" + where + "' has no 'text' string");
        text += part["text"].get<std::string>();
    }
    out = text;
    return std::nullopt;
}

std::optional<ApiError> read_messages(const json& body, std::vector<tok::ChatMessage>& out, std::vector<std::vector<std::string>>& images) {
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) return bad("messages", "'messages' is required: an array of {\"role\", \"content\"} objects");
    if (!it->is_array() || it->empty()) return bad("messages", "'messages' must be a non-empty array");
    static const std::vector<std::string> roles = {"system", "developer", "user", "assistant", "tool"};
    for (size_t i = 0; i < it->size(); ++i) {
        const json& m = (*it)[i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) return bad(where, "'" + where + "' must be an object");
        if (!m.contains("role") || !m["role"].is_string()) return bad(where + ".role", "'" + where + ".role' must be a string");
        tok::ChatMessage message;
        message.role = m["role"].get<std::string>();
        if (std::find(roles.begin(), roles.end(), message.role) == roles.end())
            return bad(where + ".role", "'" + where + ".role' is '" + message.role + "'; use system, user, assistant or tool");
        if (message.role == "developer") message.role = "system";  // OpenAI's newer name for the system turn
        if (!m.contains("content")) return bad(where + ".content", "'" + where + ".content' is required");
        if (auto error = read_content(m["content"], i, message.content, images.emplace_back())) return error;
        if (!message.content && message.role != "assistant")
            return bad(where + ".content", "'" + where + ".content' may be null only in an assistant message");
        if (m.contains("reasoning_content") && m["reasoning_content"].is_string())
            message.reasoning_content = m["reasoning_content"].get<std::string>();
        out.push_back(std::move(message));
    }
    return std::nullopt;
}

std::optional<ApiError> read_prompt(const json& body, CompletionParams& out) {
    auto it = body.find("prompt");
    if (it == body.end() || it->is_null()) return bad("prompt", "'prompt' is required: a string or an array of token ids");
    json prompt = *it;
    if (prompt.is_array() && prompt.size() == 1 && (prompt[0].is_string() || prompt[0].is_array())) prompt = prompt[0];
    if (prompt.is_string()) {
        out.prompt_text = prompt.get<std::string>();
        if (out.prompt_text.empty()) return bad("prompt", "'prompt' is empty");
        return std::nullopt;
    }
    if (prompt.is_array() && !prompt.empty() && std::all_of(prompt.begin(), prompt.end(), [](const json& v) { return v.is_number_integer(); })) {
        for (const auto& v : prompt) {
            const int64_t id = v.get<int64_t>();
            if (id < 0 || id > INT32_MAX) return bad("prompt", "token id " + std::to_string(id) + " in 'prompt' is out of range");
            out.prompt_ids.push_back(int32_t(id));
        }
        return std::nullopt;
    }
    return bad("prompt", "'prompt' must be a string or an array of token ids (one prompt per request)");
}

std::optional<ApiError> read_stop(const json& body, std::vector<std::string>& out) {
    auto it = body.find("stop");
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (it->is_string()) {
        out.push_back(it->get<std::string>());
        return std::nullopt;
    }
    if (!it->is_array() || it->size() > kMaxStopStrings || !std::all_of(it->begin(), it->end(), [](const json& s) { return s.is_string(); }))
        return bad("stop", "'stop' must be a string or an array of at most " + std::to_string(kMaxStopStrings) + " strings");
    for (const auto& s : *it) out.push_back(s.get<std::string>());
    return std::nullopt;
}

}  // namespace

std::string error_body(const ApiError& error) {
    json e = {{"message", error.message}, {"type", error.type}, {"param", nullptr}, {"code", nullptr}};
    if (!error.param.empty()) e["param"] = error.param;
    if (!error.code.empty()) e["code"] = error.code;
    return json{{"error", e}}.dump();
}

std::optional<ApiError> parse_completion_request(std::string_view body_text, bool chat, const SamplingParams& defaults,
                                                 CompletionParams& out) {
    json body;
    try {
        body = json::parse(body_text);
    } catch (const json::parse_error& e) {
        return bad("", std::string("the request body is not valid JSON: ") + e.what());
    }
    if (!body.is_object()) return bad("", "the request body must be a JSON object");
    out = CompletionParams{};
    out.chat = chat;
    out.sampling = defaults;
    if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
        if (!it->is_string()) return bad("model", "'model' must be a string");
        out.model = it->get<std::string>();
    }
    if (auto error = chat ? read_messages(body, out.messages, out.images) : read_prompt(body, out)) return error;
    if (auto error = read_bool(body, "stream", out.stream)) return error;
    if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) return bad("stream_options", "'stream_options' must be an object");
        if (auto error = read_bool(*it, "include_usage", out.include_usage)) return error;
    }
    std::optional<int64_t> max_tokens, completion_tokens, n, top_k, seed;
    if (auto error = read_integer(body, "max_tokens", 1, max_tokens)) return error;
    if (auto error = read_integer(body, "max_completion_tokens", 1, completion_tokens)) return error;
    out.max_tokens = completion_tokens ? completion_tokens : max_tokens;
    if (auto error = read_integer(body, "n", 1, n)) return error;
    if (n && *n != 1) return bad("n", "'n' must be 1: this server returns one choice per request");
    if (auto error = read_number(body, "temperature", 0, 2, false, out.sampling.temperature)) return error;
    if (auto error = read_number(body, "top_p", 0, 1, true, out.sampling.top_p)) return error;
    if (auto error = read_number(body, "min_p", 0, 1, false, out.sampling.min_p)) return error;
    if (auto error = read_number(body, "repetition_penalty", 0, 10, true, out.sampling.repetition_penalty)) return error;
    if (auto error = read_integer(body, "top_k", -1, top_k)) return error;
    if (top_k) out.sampling.top_k = std::max<int64_t>(0, *top_k);  // -1 and 0 both mean off
    if (auto error = read_integer(body, "seed", INT64_MIN, seed)) return error;
    if (seed) out.sampling.seed = uint64_t(*seed);
    for (const char* name : {"presence_penalty", "frequency_penalty"}) {
        double value = 0;
        if (auto error = read_number(body, name, -2, 2, false, value)) return error;
        if (value != 0) return bad(name, std::string("'") + name + "' is not supported; use 'repetition_penalty'");
    }
    bool logprobs = false;
    if (auto error = read_bool(body, "logprobs", logprobs)) return error;
    if (logprobs) return bad("logprobs", "'logprobs' is not supported");
    if (auto error = read_stop(body, out.stop)) return error;
    if (auto error = read_bool(body, "ignore_eos", out.ignore_eos)) return error;
    return std::nullopt;
}

ReasoningSplitter::Delta ReasoningSplitter::push(std::string_view text) {
    Delta delta;
    pending_.append(text);
    for (;;) {
        if (state_ == State::Opening) {
            // A reply that begins with <think> (after blank space) reasons first; anything else is the answer.
            const size_t start = pending_.find_first_not_of(" \t\r\n");
            if (start == std::string::npos) return delta;
            const std::string_view rest = std::string_view(pending_).substr(start);
            if (rest.size() < kThinkOpen.size() && kThinkOpen.substr(0, rest.size()) == rest) return delta;
            if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
                pending_.erase(0, start + kThinkOpen.size());
                state_ = State::Reasoning;
            } else {
                state_ = State::Content;
            }
        } else if (state_ == State::Reasoning) {
            saw_reasoning_ = true;
            const size_t close = pending_.find(kThinkClose);
            if (close != std::string::npos) {
                delta.reasoning += pending_.substr(0, close);
                pending_.erase(0, close + kThinkClose.size());
                state_ = State::Content;
                continue;
            }
            const size_t held = partial_marker_length(pending_, kThinkClose);  // may be the start of </think>
            delta.reasoning += pending_.substr(0, pending_.size() - held);
            pending_.erase(0, pending_.size() - held);
            return delta;
        } else {
            delta.content += pending_;
            pending_.clear();
            return delta;
        }
    }
}

ReasoningSplitter::Delta ReasoningSplitter::finish() {
    Delta delta;
    if (state_ == State::Reasoning) delta.reasoning = pending_;
    else delta.content = pending_;
    pending_.clear();
    return delta;
}

std::string openai_finish_reason(FinishReason reason) {
    switch (reason) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length:
        case FinishReason::ContextFull: return "length";
        case FinishReason::Cancelled: return "abort";
    }
    return "stop";
}

json usage_json(const Usage& usage) {
    return {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
            {"time_to_first_token_s", usage.time_to_first_token_s},
            {"decode_tokens_per_s", usage.decode_tokens_per_s}};
}

namespace {

json head_json(const ResponseHead& head, bool chunk) {
    return {{"id", head.id},
            {"object", head.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
            {"created", head.created},
            {"model", head.model}};
}

}  // namespace

json full_response(const ResponseHead& head, const std::string& content, const std::string& reasoning, FinishReason finish,
                   const Usage& usage) {
    json response = head_json(head, false);
    json choice = {{"index", 0}, {"finish_reason", openai_finish_reason(finish)}};
    if (head.chat) {
        json message = {{"role", "assistant"}, {"content", content}};
        if (!reasoning.empty()) message["reasoning_content"] = reasoning;
        choice["message"] = message;
    } else {
        choice["text"] = content;  // a plain completion is raw text: no reasoning split
    }
    response["choices"] = json::array({choice});
    response["usage"] = usage_json(usage);
    return response;
}

json stream_chunk(const ResponseHead& head, const std::string& content, const std::string& reasoning, bool first,
                  std::optional<FinishReason> finish, const Usage* usage) {
    json chunk = head_json(head, true);
    json choice = {{"index", 0}, {"finish_reason", finish ? json(openai_finish_reason(*finish)) : json(nullptr)}};
    if (head.chat) {
        json delta = json::object();
        if (first) delta["role"] = "assistant";
        if (!content.empty() || (first && reasoning.empty())) delta["content"] = content;
        if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
        choice["delta"] = delta;
    } else {
        choice["text"] = content;
    }
    chunk["choices"] = json::array({choice});
    if (usage) chunk["usage"] = usage_json(*usage);
    return chunk;
}

json usage_chunk(const ResponseHead& head, const Usage& usage) {
    json chunk = head_json(head, true);
    chunk["choices"] = json::array();
    chunk["usage"] = usage_json(usage);
    return chunk;
}

}  // namespace mwb::serve
