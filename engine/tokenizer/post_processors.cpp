#include "engine/tokenizer/post_processors.h"

#include <cstdint>
#include <string>

#include "engine/tokenizer/json_spec.h"

namespace mwb::tok {
namespace {

class SequencePostProcessor final : public PostProcessor {
public:
    explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
    void add_special_tokens(std::vector<int32_t>& ids) const override {
        for (const auto& step : steps_) step->add_special_tokens(ids);
    }
    std::vector<int32_t> added_ids() const override {
        std::vector<int32_t> all;
        for (const auto& step : steps_) {
            const auto ids = step->added_ids();
            all.insert(all.end(), ids.begin(), ids.end());
        }
        return all;
    }

private:
    std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// ByteLevel only trims offsets, which ids do not carry.
class NoOpPostProcessor final : public PostProcessor {
public:
    void add_special_tokens(std::vector<int32_t>&) const override {}
    std::vector<int32_t> added_ids() const override { return {}; }
};

// The single-sequence template: fixed ids before and after the encoded text.
class SurroundPostProcessor final : public PostProcessor {
public:
    SurroundPostProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
        : before_(std::move(before)), after_(std::move(after)) {}
    void add_special_tokens(std::vector<int32_t>& ids) const override {
        ids.insert(ids.begin(), before_.begin(), before_.end());
        ids.insert(ids.end(), after_.begin(), after_.end());
    }
    std::vector<int32_t> added_ids() const override {
        std::vector<int32_t> all = before_;
        all.insert(all.end(), after_.begin(), after_.end());
        return all;
    }

private:
    std::vector<int32_t> before_, after_;
};

Result<std::unique_ptr<PostProcessor>> make_template(const nlohmann::json& spec, const std::string& component) {
    auto single = spec::array_field(spec, "single", component);
    if (!single) return single.error();
    auto special_tokens = spec.find("special_tokens");
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (const auto& item : **single) {
        if (!item.is_object() || item.size() != 1)
            return make_error(component + ": each 'single' item must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
        if (auto sequence = item.find("Sequence"); sequence != item.end()) {
            if (seen_sequence || !sequence->is_object() || sequence->value("id", "") != "A")
                return make_error(component + ": 'single' must hold exactly one {\"Sequence\": {\"id\": \"A\"}}");
            seen_sequence = true;
            continue;
        }
        auto special = item.find("SpecialToken");
        if (special == item.end() || !special->is_object() || !special->contains("id") || !(*special)["id"].is_string())
            return make_error(component + ": each 'single' item must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
        std::string name = (*special)["id"].get<std::string>();
        if (special_tokens == spec.end() || !special_tokens->is_object() || !special_tokens->contains(name))
            return make_error(component + ": special token '" + name + "' is not listed in 'special_tokens'");
        const auto& entry = (*special_tokens)[name];
        auto ids = entry.find("ids");
        if (ids == entry.end() || !ids->is_array())
            return make_error(component + ": special token '" + name + "' has no 'ids' array");
        for (const auto& id : *ids) {
            if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
                return make_error(component + ": special token '" + name + "' has an id that is not a token id (" + id.dump() + ")");
            (seen_sequence ? after : before).push_back(id.get<int32_t>());
        }
    }
    if (!seen_sequence) return make_error(component + ": 'single' has no {\"Sequence\": {\"id\": \"A\"}}");
    return std::unique_ptr<PostProcessor>(new SurroundPostProcessor(std::move(before), std::move(after)));
}

// BertProcessing / RobertaProcessing: [cls] text [sep], each given as ["token", id].
Result<std::unique_ptr<PostProcessor>> make_cls_sep(const nlohmann::json& spec, const std::string& component) {
    const auto id_of = [&](const char* key) -> Result<int32_t> {
        auto it = spec.find(key);
        if (it == spec.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer() || (*it)[1].get<int64_t>() < 0 ||
            (*it)[1].get<int64_t>() > INT32_MAX)
            return make_error(component + ": field '" + key + "' must be [\"token\", id]");
        return (*it)[1].get<int32_t>();
    };
    auto cls = id_of("cls");
    if (!cls) return cls.error();
    auto sep = id_of("sep");
    if (!sep) return sep.error();
    return std::unique_ptr<PostProcessor>(new SurroundPostProcessor({*cls}, {*sep}));
}

}  // namespace

Result<std::unique_ptr<PostProcessor>> make_post_processor(const nlohmann::json& spec) {
    if (spec.is_null()) return std::unique_ptr<PostProcessor>();
    auto type = spec::type_of(spec, "post_processor");
    if (!type) return type.error();
    const std::string component = "post_processor '" + *type + "'";
    if (*type == "Sequence") {
        auto steps = spec::sequence_steps<PostProcessor>(spec, "processors", component, [](const nlohmann::json& item) { return make_post_processor(item); });
        if (!steps) return steps.error();
        return std::unique_ptr<PostProcessor>(new SequencePostProcessor(std::move(steps.value())));
    }
    if (*type == "ByteLevel") return std::unique_ptr<PostProcessor>(new NoOpPostProcessor());
    if (*type == "TemplateProcessing") return make_template(spec, component);
    if (*type == "BertProcessing" || *type == "RobertaProcessing") return make_cls_sep(spec, component);
    return make_error("post_processor type '" + *type + "' is not supported");
}

}  // namespace mwb::tok
