#include "engine/tokenizer/json_spec.h"

namespace mwb::tok::spec {
namespace {

Error field_error(std::string_view component, std::string_view key, std::string_view expected) {
    return make_error(std::string(component) + ": field '" + std::string(key) + "' must be " + std::string(expected));
}

}  // namespace

Result<std::string> string_field(const Json& object, std::string_view key, std::string_view component) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) return field_error(component, key, "a string");
    return it->get<std::string>();
}

Result<std::string> string_field_or(const Json& object, std::string_view key, std::string fallback,
                                    std::string_view component) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_string()) return field_error(component, key, "a string");
    return it->get<std::string>();
}

Result<bool> bool_field_or(const Json& object, std::string_view key, bool fallback, std::string_view component) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return field_error(component, key, "true or false");
    return it->get<bool>();
}

Result<long long> integer_field_or(const Json& object, std::string_view key, long long fallback,
                                   std::string_view component) {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_number_integer()) return field_error(component, key, "an integer");
    return it->get<long long>();
}

Result<const Json*> array_field(const Json& object, std::string_view key, std::string_view component) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_array()) return field_error(component, key, "an array");
    return &*it;
}

Result<std::string> type_of(const Json& object, std::string_view kind) {
    if (!object.is_object()) return make_error(std::string(kind) + " must be a JSON object");
    auto it = object.find("type");
    if (it == object.end() || !it->is_string()) return make_error(std::string(kind) + " has no string field 'type'");
    return it->get<std::string>();
}

Result<Regex> pattern_field(const Json& object, std::string_view key, std::string_view component) {
    auto it = object.find(key);
    if (it == object.end() || !it->is_object() || it->size() != 1)
        return field_error(component, key, "{\"String\": ...} or {\"Regex\": ...}");
    if (auto literal = it->find("String"); literal != it->end() && literal->is_string())
        return Regex::compile(literal->get<std::string>(), true);
    if (auto regex = it->find("Regex"); regex != it->end() && regex->is_string()) {
        auto compiled = Regex::compile(regex->get<std::string>());
        if (!compiled) return make_error(std::string(component) + ": " + compiled.error().message);
        return compiled;
    }
    return field_error(component, key, "{\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace mwb::tok::spec
