#include "engine/tokenizer/decoders.h"

#include <optional>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/json_spec.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok {
namespace {

class SequenceDecoder final : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (const auto& step : steps_) step->decode_chain(tokens);
    }

private:
    std::vector<std::unique_ptr<Decoder>> steps_;
};

// Maps the byte-level characters back to bytes; a token holding any other character (an added token
// such as "<｜User｜>") contributes its own UTF-8 bytes.
class ByteLevelDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string bytes;
        for (const auto& token : tokens)
            if (!byte_level::decode_token(token, bytes)) bytes += token;
        tokens.assign(1, utf8::from_bytes_lossy(bytes));
    }
};

class ReplaceDecoder final : public Decoder {
public:
    ReplaceDecoder(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (auto& token : tokens) token = pattern_.replace_all(token, content_);
    }

private:
    Regex pattern_;
    std::string content_;
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder final : public Decoder {
public:
    StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (auto& token : tokens) {
            std::u32string chars = utf8::to_u32(token);
            size_t begin = 0, end = chars.size();
            while (begin < start_ && begin < end && chars[begin] == content_) ++begin;
            size_t stripped = 0;
            while (stripped < stop_ && end > begin && chars[end - 1] == content_) {
                --end;
                ++stripped;
            }
            token = utf8::from_u32(std::u32string_view(chars).substr(begin, end - begin));
        }
    }

private:
    char32_t content_;
    size_t start_, stop_;
};

class FuseDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string joined;
        for (const auto& token : tokens) joined += token;
        tokens.assign(1, std::move(joined));
    }
};

// Turns runs of "<0xXX>" tokens into the text their bytes spell; an invalid run becomes one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::vector<std::string> out;
        std::string pending;
        size_t pending_count = 0;
        const auto flush = [&] {
            if (pending_count == 0) return;
            if (utf8::is_valid(pending)) {
                out.push_back(pending);
            } else {
                for (size_t i = 0; i < pending_count; ++i) out.emplace_back(utf8::kReplacementCharacter);
            }
            pending.clear();
            pending_count = 0;
        };
        for (auto& token : tokens) {
            if (auto byte = parse_byte(token)) {
                pending.push_back(static_cast<char>(*byte));
                ++pending_count;
                continue;
            }
            flush();
            out.push_back(std::move(token));
        }
        flush();
        tokens = std::move(out);
    }

private:
    static std::optional<int> parse_byte(const std::string& token) {
        if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
        int value = 0;
        for (size_t i = 3; i < 5; ++i) {
            char c = token[i];
            int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (digit < 0) return std::nullopt;
            value = value * 16 + digit;
        }
        return value;
    }
};

// Replaces the metaspace character by a space; in the first token it is dropped when a prefix was added.
class MetaspaceDecoder final : public Decoder {
public:
    MetaspaceDecoder(char32_t replacement, bool drop_in_first) : replacement_(replacement), drop_in_first_(drop_in_first) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string out;
            const std::string& token = tokens[i];
            for (size_t pos = 0; pos < token.size();) {
                size_t length = 0;
                char32_t c = utf8::decode(token, pos, &length);
                if (c != replacement_)
                    out.append(token, pos, length);
                else if (i != 0 || !drop_in_first_)
                    out.push_back(' ');
                pos += length;
            }
            tokens[i] = std::move(out);
        }
    }

private:
    char32_t replacement_;
    bool drop_in_first_;
};

Result<char32_t> single_char_field(const nlohmann::json& spec, const char* key, const char* fallback,
                                   const std::string& component) {
    auto text = spec::string_field_or(spec, key, fallback, component);
    if (!text) return text.error();
    size_t length = 0;
    if (text->empty() || !utf8::is_valid(*text) || (utf8::decode(*text, 0, &length), length != text->size()))
        return make_error(component + ": field '" + key + "' must be a single character");
    return utf8::decode(*text, 0, &length);
}

}  // namespace

Result<std::unique_ptr<Decoder>> make_decoder(const nlohmann::json& spec) {
    if (spec.is_null()) return std::unique_ptr<Decoder>();
    auto type = spec::type_of(spec, "decoder");
    if (!type) return type.error();
    const std::string component = "decoder '" + *type + "'";
    if (*type == "Sequence") {
        auto steps = spec::sequence_steps<Decoder>(spec, "decoders", component, [](const nlohmann::json& item) { return make_decoder(item); });
        if (!steps) return steps.error();
        return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(steps.value())));
    }
    if (*type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
    if (*type == "Replace") {
        auto pattern = spec::pattern_field(spec, "pattern", component);
        if (!pattern) return pattern.error();
        auto content = spec::string_field(spec, "content", component);
        if (!content) return content.error();
        return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(pattern.value()), std::move(content.value())));
    }
    if (*type == "Strip") {
        auto content = single_char_field(spec, "content", " ", component);
        if (!content) return content.error();
        auto start = spec::integer_field_or(spec, "start", 0, component);
        if (!start) return start.error();
        auto stop = spec::integer_field_or(spec, "stop", 0, component);
        if (!stop) return stop.error();
        if (*start < 0 || *stop < 0) return make_error(component + ": 'start' and 'stop' must not be negative");
        return std::unique_ptr<Decoder>(
            new StripDecoder(*content, static_cast<size_t>(*start), static_cast<size_t>(*stop)));
    }
    if (*type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
    if (*type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
    if (*type == "Metaspace") {
        auto replacement = single_char_field(spec, "replacement", "\xE2\x96\x81", component);
        if (!replacement) return replacement.error();
        bool drop_in_first = true;
        if (auto scheme = spec.find("prepend_scheme"); scheme != spec.end() && scheme->is_string()) {
            drop_in_first = *scheme != "never";
        } else {
            auto add_prefix_space = spec::bool_field_or(spec, "add_prefix_space", true, component);
            if (!add_prefix_space) return add_prefix_space.error();
            drop_in_first = *add_prefix_space;
        }
        return std::unique_ptr<Decoder>(new MetaspaceDecoder(*replacement, drop_in_first));
    }
    return make_error("decoder type '" + *type + "' is not supported");
}

}  // namespace mwb::tok
