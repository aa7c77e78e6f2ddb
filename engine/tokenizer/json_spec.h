// Typed reading of tokenizer.json component objects, with errors that name the component and field.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.h"
#include "engine/tokenizer/regex.h"

namespace mwb::tok::spec {

using Json = nlohmann::json;

// `component` is how errors name the object, e.g. "pre_tokenizer 'Split'".
Result<std::string> string_field(const Json& object, std::string_view key, std::string_view component);
Result<std::string> string_field_or(const Json& object, std::string_view key, std::string fallback,
                                    std::string_view component);
Result<bool> bool_field_or(const Json& object, std::string_view key, bool fallback, std::string_view component);
Result<long long> integer_field_or(const Json& object, std::string_view key, long long fallback,
                                   std::string_view component);
Result<const Json*> array_field(const Json& object, std::string_view key, std::string_view component);

// The component's "type", checked to be a string.
Result<std::string> type_of(const Json& object, std::string_view kind);

// {"String": "..."} (matched literally) or {"Regex": "..."}.
Result<Regex> pattern_field(const Json& object, std::string_view key, std::string_view component);

// The steps of a `Sequence` component: each item of the array `key` built by `make`; null steps are dropped.
template <class Component, class Make>
Result<std::vector<std::unique_ptr<Component>>> sequence_steps(const Json& object, std::string_view key,
                                                               std::string_view component, Make make) {
    auto items = array_field(object, key, component);
    if (!items) return items.error();
    std::vector<std::unique_ptr<Component>> steps;
    for (const auto& item : **items) {
        auto step = make(item);
        if (!step) return step.error();
        if (*step) steps.push_back(std::move(step.value()));
    }
    return steps;
}

}  // namespace mwb::tok::spec
