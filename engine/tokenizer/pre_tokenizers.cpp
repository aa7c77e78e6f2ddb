#include "engine/tokenizer/pre_tokenizers.h"

#include <algorithm>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/json_spec.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok {
namespace {

// What happens to the matched parts of a split (Hugging Face's SplitDelimiterBehavior).
enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Segment {
    size_t start, end;
    bool is_match;
};

// Segments covering all of `text`: the regex matches and the gaps between them.
std::vector<Segment> regex_segments(const Regex& regex, std::string_view text) {
    std::vector<Segment> segments;
    size_t previous = 0;
    for (auto [start, end] : regex.find_all(text)) {
        if (previous != start) segments.push_back({previous, start, false});
        segments.push_back({start, end, true});
        previous = end;
    }
    if (previous != text.size()) segments.push_back({previous, text.size(), false});
    return segments;
}

// Segments covering all of `text` where each character satisfying `is_match` is a match of its own.
template <class Predicate>
std::vector<Segment> char_segments(std::string_view text, Predicate is_match) {
    std::vector<Segment> segments;
    size_t previous = 0;
    for (size_t pos = 0; pos < text.size();) {
        size_t length = 0;
        char32_t c = utf8::decode(text, pos, &length);
        if (is_match(c)) {
            if (previous < pos) segments.push_back({previous, pos, false});
            segments.push_back({pos, pos + length, true});
            previous = pos + length;
        }
        pos += length;
    }
    if (previous < text.size()) segments.push_back({previous, text.size(), false});
    return segments;
}

// Applies `behavior` to the segments of `piece` and appends the resulting non-empty pieces to `out`.
void split_piece(const PreToken& piece, std::vector<Segment> segments, Behavior behavior, bool invert,
                 std::vector<PreToken>& out) {
    if (invert)
        for (auto& segment : segments) segment.is_match = !segment.is_match;
    struct Part {
        size_t start, end;
        bool removed;
    };
    std::vector<Part> parts;
    parts.reserve(segments.size());
    bool previous_match = false;
    switch (behavior) {
        case Behavior::Isolated:
            for (const auto& s : segments) parts.push_back({s.start, s.end, false});
            break;
        case Behavior::Removed:
            for (const auto& s : segments) parts.push_back({s.start, s.end, s.is_match});
            break;
        case Behavior::Contiguous:
            for (const auto& s : segments) {
                if (s.is_match == previous_match && !parts.empty())
                    parts.back().end = s.end;
                else
                    parts.push_back({s.start, s.end, false});
                previous_match = s.is_match;
            }
            break;
        case Behavior::MergedWithPrevious:
            for (const auto& s : segments) {
                if (s.is_match && !previous_match && !parts.empty())
                    parts.back().end = s.end;
                else
                    parts.push_back({s.start, s.end, false});
                previous_match = s.is_match;
            }
            break;
        case Behavior::MergedWithNext:
            for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
                if (it->is_match && !previous_match && !parts.empty())
                    parts.back().start = it->start;
                else
                    parts.push_back({it->start, it->end, false});
                previous_match = it->is_match;
            }
            std::reverse(parts.begin(), parts.end());
            break;
    }
    for (const auto& part : parts) {
        if (part.removed || part.start == part.end) continue;
        out.push_back({piece.text.substr(part.start, part.end - part.start), piece.at_input_start && part.start == 0});
    }
}

Result<Behavior> parse_behavior(const nlohmann::json& spec, const std::string& component) {
    auto name = spec::string_field(spec, "behavior", component);
    if (!name) return name.error();
    if (*name == "Removed") return Behavior::Removed;
    if (*name == "Isolated") return Behavior::Isolated;
    if (*name == "MergedWithPrevious") return Behavior::MergedWithPrevious;
    if (*name == "MergedWithNext") return Behavior::MergedWithNext;
    if (*name == "Contiguous") return Behavior::Contiguous;
    return make_error(component + ": behavior '" + *name + "' is not supported");
}

class SequencePreTokenizer final : public PreTokenizer {
public:
    explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
    void pre_tokenize(std::vector<PreToken>& pieces) const override {
        for (const auto& step : steps_) step->pre_tokenize(pieces);
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class SplitPreTokenizer final : public PreTokenizer {
public:
    SplitPreTokenizer(Regex pattern, Behavior behavior, bool invert)
        : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
    void pre_tokenize(std::vector<PreToken>& pieces) const override {
        std::vector<PreToken> out;
        out.reserve(pieces.size() * 2);
        for (const auto& piece : pieces)
            split_piece(piece, regex_segments(pattern_, piece.text), behavior_, invert_, out);
        pieces = std::move(out);
    }

private:
    Regex pattern_;
    Behavior behavior_;
    bool invert_;
};

// GPT-2's word pattern, as the ByteLevel pre-tokenizer applies it when use_regex is set.
const Regex& gpt2_pattern() {
    static const Regex regex =
        Regex::compile(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)").value();
    return regex;
}

class ByteLevelPreTokenizer final : public PreTokenizer {
public:
    ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
        : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
    void pre_tokenize(std::vector<PreToken>& pieces) const override {
        std::vector<PreToken> out;
        out.reserve(pieces.size());
        for (auto& piece : pieces) {
            if (add_prefix_space_ && piece.text.rfind(' ', 0) != 0) piece.text.insert(0, 1, ' ');
            if (use_regex_)
                split_piece(piece, regex_segments(gpt2_pattern(), piece.text), Behavior::Isolated, false, out);
            else if (!piece.text.empty())
                out.push_back(std::move(piece));
        }
        for (auto& piece : out) piece.text = byte_level::encode(piece.text);
        pieces = std::move(out);
    }

private:
    bool add_prefix_space_, use_regex_;
};

class DigitsPreTokenizer final : public PreTokenizer {
public:
    explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
    void pre_tokenize(std::vector<PreToken>& pieces) const override {
        std::vector<PreToken> out;
        Behavior behavior = individual_ ? Behavior::Isolated : Behavior::Contiguous;
        for (const auto& piece : pieces)
            split_piece(piece, char_segments(piece.text, unicode::is_numeric), behavior, false, out);
        pieces = std::move(out);
    }

private:
    bool individual_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
public:
    MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
        : replacement_(replacement), scheme_(scheme), split_(split) {
        utf8::append(replacement_text_, replacement);
    }
    void pre_tokenize(std::vector<PreToken>& pieces) const override {
        std::vector<PreToken> out;
        for (auto& piece : pieces) {
            std::string text;
            text.reserve(piece.text.size() + replacement_text_.size());
            for (char c : piece.text) {
                if (c == ' ')
                    text += replacement_text_;
                else
                    text.push_back(c);
            }
            bool prepend = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_input_start);
            if (prepend && text.rfind(replacement_text_, 0) != 0) text.insert(0, replacement_text_);
            PreToken rewritten{std::move(text), piece.at_input_start};
            if (split_) {
                split_piece(rewritten, char_segments(rewritten.text, [&](char32_t c) { return c == replacement_; }),
                            Behavior::MergedWithNext, false, out);
            } else if (!rewritten.text.empty()) {
                out.push_back(std::move(rewritten));
            }
        }
        pieces = std::move(out);
    }

private:
    char32_t replacement_;
    std::string replacement_text_;
    PrependScheme scheme_;
    bool split_;
};

Result<std::unique_ptr<PreTokenizer>> make_metaspace(const nlohmann::json& spec, const std::string& component) {
    auto replacement = spec::string_field_or(spec, "replacement", "\xE2\x96\x81", component);
    if (!replacement) return replacement.error();
    size_t length = 0;
    if (replacement->empty() || !utf8::is_valid(*replacement) ||
        (utf8::decode(*replacement, 0, &length), length != replacement->size()))
        return make_error(component + ": field 'replacement' must be a single character");
    char32_t replacement_char = utf8::decode(*replacement, 0, &length);
    PrependScheme scheme = PrependScheme::Always;
    if (auto it = spec.find("prepend_scheme"); it != spec.end() && !it->is_null()) {
        std::string name = it->is_string() ? it->get<std::string>() : std::string();
        if (name == "always")
            scheme = PrependScheme::Always;
        else if (name == "first")
            scheme = PrependScheme::First;
        else if (name == "never")
            scheme = PrependScheme::Never;
        else
            return make_error(component + ": prepend_scheme must be \"always\", \"first\" or \"never\"");
    } else {
        auto add_prefix_space = spec::bool_field_or(spec, "add_prefix_space", true, component);
        if (!add_prefix_space) return add_prefix_space.error();
        scheme = *add_prefix_space ? PrependScheme::Always : PrependScheme::Never;
    }
    auto split = spec::bool_field_or(spec, "split", true, component);
    if (!split) return split.error();
    return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(replacement_char, scheme, *split));
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const nlohmann::json& spec) {
    if (spec.is_null()) return std::unique_ptr<PreTokenizer>();
    auto type = spec::type_of(spec, "pre_tokenizer");
    if (!type) return type.error();
    const std::string component = "pre_tokenizer '" + *type + "'";
    if (*type == "Sequence") {
        auto steps = spec::sequence_steps<PreTokenizer>(spec, "pretokenizers", component, [](const nlohmann::json& item) { return make_pre_tokenizer(item); });
        if (!steps) return steps.error();
        return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps.value())));
    }
    if (*type == "Split") {
        auto pattern = spec::pattern_field(spec, "pattern", component);
        if (!pattern) return pattern.error();
        auto behavior = parse_behavior(spec, component);
        if (!behavior) return behavior.error();
        auto invert = spec::bool_field_or(spec, "invert", false, component);
        if (!invert) return invert.error();
        return std::unique_ptr<PreTokenizer>(new SplitPreTokenizer(std::move(pattern.value()), *behavior, *invert));
    }
    if (*type == "ByteLevel") {
        auto add_prefix_space = spec::bool_field_or(spec, "add_prefix_space", true, component);
        if (!add_prefix_space) return add_prefix_space.error();
        auto use_regex = spec::bool_field_or(spec, "use_regex", true, component);
        if (!use_regex) return use_regex.error();
        return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(*add_prefix_space, *use_regex));
    }
    if (*type == "Digits") {
        auto individual = spec::bool_field_or(spec, "individual_digits", false, component);
        if (!individual) return individual.error();
        return std::unique_ptr<PreTokenizer>(new DigitsPreTokenizer(*individual));
    }
    if (*type == "Metaspace") return make_metaspace(spec, component);
    return make_error("pre_tokenizer type '" + *type + "' is not supported");
}

}  // namespace mwb::tok
