#include "engine/tokenizer/normalizers.h"

#include <vector>

#include "engine/tokenizer/json_spec.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok {
namespace {

class SequenceNormalizer final : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
    Result<std::string> normalize(std::string text) const override {
        for (const auto& step : steps_) {
            auto next = step->normalize(std::move(text));
            if (!next) return next.error();
            text = std::move(next.value());
        }
        return text;
    }

private:
    std::vector<std::unique_ptr<Normalizer>> steps_;
};

class UnicodeFormNormalizer final : public Normalizer {
public:
    explicit UnicodeFormNormalizer(unicode::NormalizationForm form) : form_(form) {}
    Result<std::string> normalize(std::string text) const override { return unicode::normalize(text, form_); }

private:
    unicode::NormalizationForm form_;
};

class ReplaceNormalizer final : public Normalizer {
public:
    ReplaceNormalizer(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
    Result<std::string> normalize(std::string text) const override { return pattern_.replace_all(text, content_); }

private:
    Regex pattern_;
    std::string content_;
};

class PrependNormalizer final : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
    Result<std::string> normalize(std::string text) const override {
        if (text.empty()) return text;
        return prefix_ + text;
    }

private:
    std::string prefix_;
};

class StripNormalizer final : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    Result<std::string> normalize(std::string text) const override {
        std::u32string chars = utf8::to_u32(text);
        size_t begin = 0, end = chars.size();
        if (left_)
            while (begin < end && unicode::is_whitespace(chars[begin])) ++begin;
        if (right_)
            while (end > begin && unicode::is_whitespace(chars[end - 1])) --end;
        return utf8::from_u32(std::u32string_view(chars).substr(begin, end - begin));
    }

private:
    bool left_, right_;
};

class LowercaseNormalizer final : public Normalizer {
public:
    Result<std::string> normalize(std::string text) const override { return unicode::to_lower(text); }
};

}  // namespace

Result<std::unique_ptr<Normalizer>> make_normalizer(const nlohmann::json& spec) {
    if (spec.is_null()) return std::unique_ptr<Normalizer>();
    auto type = spec::type_of(spec, "normalizer");
    if (!type) return type.error();
    const std::string component = "normalizer '" + *type + "'";
    if (*type == "Sequence") {
        auto steps = spec::sequence_steps<Normalizer>(spec, "normalizers", component, [](const nlohmann::json& item) { return make_normalizer(item); });
        if (!steps) return steps.error();
        return std::unique_ptr<Normalizer>(new SequenceNormalizer(std::move(steps.value())));
    }
    if (*type == "NFC") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(unicode::NormalizationForm::NFC));
    if (*type == "NFD") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(unicode::NormalizationForm::NFD));
    if (*type == "NFKC") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(unicode::NormalizationForm::NFKC));
    if (*type == "NFKD") return std::unique_ptr<Normalizer>(new UnicodeFormNormalizer(unicode::NormalizationForm::NFKD));
    if (*type == "Replace") {
        auto pattern = spec::pattern_field(spec, "pattern", component);
        if (!pattern) return pattern.error();
        auto content = spec::string_field(spec, "content", component);
        if (!content) return content.error();
        return std::unique_ptr<Normalizer>(new ReplaceNormalizer(std::move(pattern.value()), std::move(content.value())));
    }
    if (*type == "Prepend") {
        auto prefix = spec::string_field(spec, "prepend", component);
        if (!prefix) return prefix.error();
        return std::unique_ptr<Normalizer>(new PrependNormalizer(std::move(prefix.value())));
    }
    if (*type == "Strip") {
        auto left = spec::bool_field_or(spec, "strip_left", false, component);
        if (!left) return left.error();
        auto right = spec::bool_field_or(spec, "strip_right", false, component);
        if (!right) return right.error();
        return std::unique_ptr<Normalizer>(new StripNormalizer(*left, *right));
    }
    if (*type == "Lowercase") return std::unique_ptr<Normalizer>(new LowercaseNormalizer());
    return make_error("normalizer type '" + *type + "' is not supported");
}

}  // namespace mwb::tok
