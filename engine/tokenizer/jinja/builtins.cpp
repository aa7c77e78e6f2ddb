#include "engine/tokenizer/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>

#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok::jinja {
namespace {

constexpr int64_t kMaxRangeLength = 1000000;

// Argument `index` / `name` of a call, or `fallback` when not given.
Value argument(const CallArgs& args, size_t index, const char* name, Value fallback = Value()) {
    for (const auto& [key, value] : args.keyword)
        if (key == name) return value;
    if (index < args.positional.size()) return args.positional[index];
    return fallback;
}

Value keyword_argument(const CallArgs& args, const char* name) {
    for (const auto& [key, value] : args.keyword)
        if (key == name) return value;
    return Value();
}

// `what` is a plain C string so that binding the result to a reference involves no temporary (GCC 13's
// -Wdangling-reference flags a reference returned from a call that was given one).
const std::string& require_string(const Value& value, const char* what) {
    if (!value.is_string()) throw RenderError(std::string(what) + " expects a string, got " + value.type_name());
    return value.as_string();
}

bool is_python_space(char32_t c) { return (c >= 0x1C && c <= 0x1F) || unicode::is_whitespace(c); }

std::string strip(const std::string& text, const Value& chars, bool left, bool right) {
    std::u32string codepoints = utf8::to_u32(text);
    std::u32string strip_set;
    bool whitespace = chars.is_undefined() || chars.is_none();
    if (!whitespace) strip_set = utf8::to_u32(require_string(chars, "strip"));
    const auto strippable = [&](char32_t c) {
        return whitespace ? is_python_space(c) : strip_set.find(c) != std::u32string::npos;
    };
    size_t begin = 0, end = codepoints.size();
    if (left)
        while (begin < end && strippable(codepoints[begin])) ++begin;
    if (right)
        while (end > begin && strippable(codepoints[end - 1])) --end;
    return utf8::from_u32(std::u32string_view(codepoints).substr(begin, end - begin));
}

Value split(const std::string& text, const Value& separator, const Value& max_splits_value) {
    int64_t max_splits = max_splits_value.is_undefined() || max_splits_value.is_none() ? -1 : max_splits_value.as_int();
    Array parts;
    if (separator.is_undefined() || separator.is_none()) {
        std::u32string chars = utf8::to_u32(text);
        size_t pos = 0;
        while (true) {
            while (pos < chars.size() && is_python_space(chars[pos])) ++pos;
            if (pos == chars.size()) break;
            if (max_splits >= 0 && static_cast<int64_t>(parts.size()) == max_splits) {
                size_t end = chars.size();
                while (end > pos && is_python_space(chars[end - 1])) --end;
                parts.emplace_back(utf8::from_u32(std::u32string_view(chars).substr(pos, end - pos)));
                break;
            }
            size_t end = pos;
            while (end < chars.size() && !is_python_space(chars[end])) ++end;
            parts.emplace_back(utf8::from_u32(std::u32string_view(chars).substr(pos, end - pos)));
            pos = end;
        }
        return Value(std::move(parts));
    }
    const std::string& sep = require_string(separator, "split");
    if (sep.empty()) throw RenderError("split: empty separator");
    size_t pos = 0;
    while (true) {
        size_t found = text.find(sep, pos);
        if (found == std::string::npos || (max_splits >= 0 && static_cast<int64_t>(parts.size()) == max_splits)) {
            parts.emplace_back(text.substr(pos));
            break;
        }
        parts.emplace_back(text.substr(pos, found - pos));
        pos = found + sep.size();
    }
    return Value(std::move(parts));
}

std::string replace(const std::string& text, const std::string& old, const std::string& replacement, int64_t count) {
    std::string out;
    size_t pos = 0;
    int64_t done = 0;
    if (old.empty()) {
        // Python inserts the replacement around every character.
        std::u32string chars = utf8::to_u32(text);
        for (char32_t c : chars) {
            if (count < 0 || done < count) {
                out += replacement;
                ++done;
            }
            utf8::append(out, c);
        }
        if (count < 0 || done < count) out += replacement;
        return out;
    }
    while (count < 0 || done < count) {
        size_t found = text.find(old, pos);
        if (found == std::string::npos) break;
        out.append(text, pos, found - pos);
        out += replacement;
        pos = found + old.size();
        ++done;
    }
    out.append(text, pos, std::string::npos);
    return out;
}

std::string upper(const std::string& text) {
    auto uppered = unicode::to_upper(text);
    if (!uppered) throw RenderError(uppered.error().message);
    return uppered.value();
}

std::string lower(const std::string& text) {
    auto lowered = unicode::to_lower(text);
    if (!lowered) throw RenderError(lowered.error().message);
    return lowered.value();
}

std::string capitalize(const std::string& text) {
    if (text.empty()) return text;
    std::string rest = lower(text.substr(1));
    return upper(text.substr(0, 1)) + rest;
}

std::string title(const std::string& text) {
    std::string out;
    bool previous_is_letter = false;
    for (char c : text) {
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (letter) out += previous_is_letter ? static_cast<char>(std::tolower(c)) : static_cast<char>(std::toupper(c));
        else out += c;
        previous_is_letter = letter;
    }
    return out;
}

bool affix_match(const std::string& text, const Value& affixes, bool prefix) {
    const auto check = [&](const Value& affix) {
        const std::string& a = require_string(affix, prefix ? "startswith" : "endswith");
        if (a.size() > text.size()) return false;
        return prefix ? text.compare(0, a.size(), a) == 0 : text.compare(text.size() - a.size(), a.size(), a) == 0;
    };
    if (affixes.is_array()) return std::any_of(affixes.array().begin(), affixes.array().end(), check);
    return check(affixes);
}

size_t length_of(const Value& value) {
    if (value.is_string()) return utf8::to_u32(value.as_string()).size();
    if (value.is_array()) return value.array().size();
    if (value.is_object()) return value.object_ref().items.size();
    if (value.is_undefined()) return 0;
    throw RenderError("object of type '" + value.type_name() + "' has no len()");
}

Value bound(const std::string& name, std::function<Value(CallArgs&)> call) { return Value::function(name, std::move(call)); }

Value string_method(const std::string& text, const std::string& name) {
    if (name == "split") return bound(name, [text](CallArgs& a) { return split(text, argument(a, 0, "sep"), argument(a, 1, "maxsplit")); });
    if (name == "strip") return bound(name, [text](CallArgs& a) { return Value(strip(text, argument(a, 0, "chars"), true, true)); });
    if (name == "lstrip") return bound(name, [text](CallArgs& a) { return Value(strip(text, argument(a, 0, "chars"), true, false)); });
    if (name == "rstrip") return bound(name, [text](CallArgs& a) { return Value(strip(text, argument(a, 0, "chars"), false, true)); });
    if (name == "startswith") return bound(name, [text](CallArgs& a) { return Value(affix_match(text, argument(a, 0, "prefix"), true)); });
    if (name == "endswith") return bound(name, [text](CallArgs& a) { return Value(affix_match(text, argument(a, 0, "suffix"), false)); });
    if (name == "replace")
        return bound(name, [text](CallArgs& a) {
            Value count = argument(a, 2, "count", Value(-1));
            return Value(replace(text, require_string(argument(a, 0, "old"), "replace"),
                                 require_string(argument(a, 1, "new"), "replace"), count.as_int()));
        });
    if (name == "upper") return bound(name, [text](CallArgs&) { return Value(upper(text)); });
    if (name == "lower") return bound(name, [text](CallArgs&) { return Value(lower(text)); });
    if (name == "capitalize") return bound(name, [text](CallArgs&) { return Value(capitalize(text)); });
    if (name == "title") return bound(name, [text](CallArgs&) { return Value(title(text)); });
    if (name == "join")
        return bound(name, [text](CallArgs& a) {
            std::string out;
            Array items = iterate(argument(a, 0, "iterable"));
            for (size_t i = 0; i < items.size(); ++i) out += (i ? text : "") + require_string(items[i], "join");
            return Value(out);
        });
    return Value();
}

Value dict_method(const Value& dict, const std::string& name) {
    if (name == "items")
        return bound(name, [dict](CallArgs&) {
            Array pairs;
            for (const auto& [key, value] : dict.object_ref().items) pairs.emplace_back(Array{Value(key), value});
            return Value(std::move(pairs));
        });
    if (name == "keys")
        return bound(name, [dict](CallArgs&) {
            Array keys;
            for (const auto& entry : dict.object_ref().items) keys.emplace_back(entry.first);
            return Value(std::move(keys));
        });
    if (name == "values")
        return bound(name, [dict](CallArgs&) {
            Array values;
            for (const auto& entry : dict.object_ref().items) values.push_back(entry.second);
            return Value(std::move(values));
        });
    if (name == "get")
        return bound(name, [dict](CallArgs& a) {
            Value key = argument(a, 0, "key");
            const Value* found = key.is_string() ? dict.object_ref().find(key.as_string()) : nullptr;
            return found ? *found : argument(a, 1, "default", Value(nullptr));
        });
    return Value();
}

// Python's sequence index normalisation; false when out of range.
bool normalize_index(int64_t& index, size_t size) {
    if (index < 0) index += static_cast<int64_t>(size);
    return index >= 0 && index < static_cast<int64_t>(size);
}

std::string join(const Value& items, const std::string& separator, const Value& attribute) {
    std::string out;
    Array values = iterate(items);
    for (size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += separator;
        out += (attribute.is_undefined() ? values[i] : get_attribute(values[i], attribute.str())).str();
    }
    return out;
}

Value to_json_filter(const Value& operand, const CallArgs& args) {
    Value indent = argument(args, 0, "indent");
    Value separators = argument(args, 2, "separators");
    Value sort_keys = argument(args, 3, "sort_keys", Value(false));
    if (argument(args, 1, "ensure_ascii", Value(false)).truthy())
        throw RenderError("tojson: ensure_ascii=True is not supported");
    std::optional<std::string> indent_text;
    if (indent.is_int()) indent_text = std::string(static_cast<size_t>(std::max<int64_t>(0, indent.as_int())), ' ');
    else if (indent.is_string()) indent_text = indent.as_string();
    else if (!indent.is_undefined() && !indent.is_none()) throw RenderError("tojson: indent must be an integer or a string");
    std::string item_separator = indent_text ? "," : ", ", key_separator = ": ";
    if (separators.is_array()) {
        if (separators.array().size() != 2) throw RenderError("tojson: separators must be a pair of strings");
        item_separator = require_string(separators.array()[0], "tojson separators");
        key_separator = require_string(separators.array()[1], "tojson separators");
    }
    return Value(to_json(operand, indent_text, sort_keys.truthy(), item_separator, key_separator));
}

Value select_by_attribute(const Value& operand, CallArgs& args, bool keep_matching) {
    Value attribute = argument(args, 0, "attribute");
    Array out;
    for (const Value& item : iterate(operand)) {
        Value field = get_attribute(item, require_string(attribute, "selectattr"));
        bool matches;
        if (args.positional.size() >= 2) {
            std::vector<Value> test_args(args.positional.begin() + 2, args.positional.end());
            matches = apply_test(require_string(args.positional[1], "selectattr"), field, test_args);
        } else {
            matches = field.truthy();
        }
        if (matches == keep_matching) out.push_back(item);
    }
    return Value(std::move(out));
}

Value map_filter(const Value& operand, CallArgs& args) {
    Array out;
    Value attribute = keyword_argument(args, "attribute");
    if (!attribute.is_undefined()) {
        Value fallback = keyword_argument(args, "default");
        for (const Value& item : iterate(operand)) {
            Value field = get_attribute(item, require_string(attribute, "map"));
            out.push_back(field.is_undefined() && !fallback.is_undefined() ? fallback : field);
        }
        return Value(std::move(out));
    }
    if (args.positional.empty()) throw RenderError("map expects a filter name or attribute=");
    std::string filter = require_string(args.positional[0], "map");
    CallArgs rest{std::vector<Value>(args.positional.begin() + 1, args.positional.end()), {}};
    for (const Value& item : iterate(operand)) {
        CallArgs copy = rest;
        out.push_back(apply_filter(filter, item, copy));
    }
    return Value(std::move(out));
}

const std::set<std::string>& filter_names() {
    static const std::set<std::string> names = {
        "abs",    "capitalize", "count", "d",    "default", "first",   "float",     "int",   "items", "join",
        "last",   "length",     "list",  "lower", "map",    "rejectattr", "replace", "reverse", "safe", "selectattr",
        "string", "title",      "tojson", "trim", "upper"};
    return names;
}

const std::set<std::string>& test_names() {
    static const std::set<std::string> names = {
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "even", "false", "float", "ge", "gt",
        "in", "integer", "iterable", "le", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas",
        "sequence", "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">="};
    return names;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filter_names().count(name) > 0; }
bool is_known_test(const std::string& name) { return test_names().count(name) > 0; }

Array iterate(const Value& value) {
    if (value.is_array()) return value.array();
    if (value.is_object()) {
        Array keys;
        for (const auto& entry : value.object_ref().items) keys.emplace_back(entry.first);
        return keys;
    }
    if (value.is_string()) {
        Array chars;
        const std::string& text = value.as_string();
        for (size_t pos = 0; pos < text.size();) {
            size_t length = utf8::sequence_length(static_cast<unsigned char>(text[pos]));
            chars.emplace_back(text.substr(pos, length));
            pos += length;
        }
        return chars;
    }
    if (value.is_undefined()) return {};
    throw RenderError("'" + value.type_name() + "' object is not iterable");
}

Value apply_filter(const std::string& name, const Value& operand, CallArgs& args) {
    if (name == "trim") return Value(strip(require_string(operand, "trim"), argument(args, 0, "chars"), true, true));
    if (name == "length" || name == "count") return Value(static_cast<int64_t>(length_of(operand)));
    if (name == "tojson") return to_json_filter(operand, args);
    if (name == "join") return Value(join(operand, argument(args, 0, "d", Value("")).str(), argument(args, 1, "attribute")));
    if (name == "replace") {
        Value count = argument(args, 2, "count", Value(-1));
        return Value(replace(operand.str(), argument(args, 0, "old").str(), argument(args, 1, "new").str(),
                             count.is_none() ? -1 : count.as_int()));
    }
    if (name == "upper") return Value(upper(operand.str()));
    if (name == "lower") return Value(lower(operand.str()));
    if (name == "capitalize") return Value(capitalize(operand.str()));
    if (name == "title") return Value(title(operand.str()));
    if (name == "default" || name == "d") {
        bool use_default = operand.is_undefined() || (argument(args, 1, "boolean", Value(false)).truthy() && !operand.truthy());
        return use_default ? argument(args, 0, "default_value", Value("")) : operand;
    }
    if (name == "first" || name == "last") {
        Array items = iterate(operand);
        if (items.empty()) return Value();
        return name == "first" ? items.front() : items.back();
    }
    if (name == "list") return Value(iterate(operand));
    if (name == "reverse") {
        if (operand.is_string()) {
            std::u32string chars = utf8::to_u32(operand.as_string());
            std::reverse(chars.begin(), chars.end());
            return Value(utf8::from_u32(chars));
        }
        Array items = iterate(operand);
        std::reverse(items.begin(), items.end());
        return Value(std::move(items));
    }
    if (name == "string") return Value(operand.str());
    if (name == "safe") return operand;
    if (name == "items") {
        if (!operand.is_object()) throw RenderError("items expects a mapping, got " + operand.type_name());
        Array pairs;
        for (const auto& [key, value] : operand.object_ref().items) pairs.emplace_back(Array{Value(key), value});
        return Value(std::move(pairs));
    }
    if (name == "int") {
        if (operand.is_number()) return Value(operand.as_int());
        if (operand.is_string()) {
            try {
                size_t used = 0;
                long long value = std::stoll(operand.as_string(), &used);
                if (used == operand.as_string().size()) return Value(static_cast<int64_t>(value));
            } catch (const std::exception&) {
            }
        }
        return argument(args, 0, "default", Value(0));
    }
    if (name == "float") {
        if (operand.is_number()) return Value(operand.as_float());
        if (operand.is_string()) {
            char* end = nullptr;
            double value = std::strtod(operand.as_string().c_str(), &end);
            if (!operand.as_string().empty() && *end == '\0') return Value(value);
        }
        return argument(args, 0, "default", Value(0.0));
    }
    if (name == "abs") {
        if (operand.is_float()) return Value(std::fabs(operand.as_float()));
        if (operand.is_number()) return Value(static_cast<int64_t>(std::llabs(operand.as_int())));
        throw RenderError("abs expects a number, got " + operand.type_name());
    }
    if (name == "selectattr") return select_by_attribute(operand, args, true);
    if (name == "rejectattr") return select_by_attribute(operand, args, false);
    if (name == "map") return map_filter(operand, args);
    throw RenderError("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& operand, const std::vector<Value>& args) {
    const auto arg = [&](size_t i) {
        if (i >= args.size()) throw RenderError("test '" + name + "' needs an argument");
        return args[i];
    };
    if (name == "defined") return !operand.is_undefined();
    if (name == "undefined") return operand.is_undefined();
    if (name == "none") return operand.is_none();
    if (name == "string") return operand.is_string();
    if (name == "mapping") return operand.is_object() && !operand.is_namespace();
    if (name == "iterable") return operand.is_array() || operand.is_object() || operand.is_string() || operand.is_undefined();
    if (name == "sequence") return operand.is_array() || operand.is_object() || operand.is_string();
    if (name == "number") return operand.is_int() || operand.is_float();
    if (name == "integer") return operand.is_int();
    if (name == "float") return operand.is_float();
    if (name == "boolean") return operand.is_bool();
    if (name == "true") return operand.is_bool() && operand.as_bool();
    if (name == "false") return operand.is_bool() && !operand.as_bool();
    if (name == "callable") return operand.is_callable();
    if (name == "odd" || name == "even") {
        if (!operand.is_int()) throw RenderError("test '" + name + "' expects an integer");
        return (operand.as_int() % 2 != 0) == (name == "odd");
    }
    if (name == "divisibleby") {
        Value divisor = arg(0);
        if (!operand.is_number() || !divisor.is_number() || divisor.as_int() == 0)
            throw RenderError("test 'divisibleby' expects numbers and a non-zero divisor");
        return divisor.as_int() == -1 || operand.as_int() % divisor.as_int() == 0;
    }
    if (name == "lower") return operand.is_string() && lower(operand.as_string()) == operand.as_string();
    if (name == "upper") return operand.is_string() && upper(operand.as_string()) == operand.as_string();
    if (name == "eq" || name == "equalto" || name == "==") return compare("==", operand, arg(0));
    if (name == "ne" || name == "!=") return compare("!=", operand, arg(0));
    if (name == "lt" || name == "<") return compare("<", operand, arg(0));
    if (name == "le" || name == "<=") return compare("<=", operand, arg(0));
    if (name == "gt" || name == ">") return compare(">", operand, arg(0));
    if (name == "ge" || name == ">=") return compare(">=", operand, arg(0));
    if (name == "in") return compare("in", operand, arg(0));
    if (name == "sameas") {
        Value other = arg(0);
        if (operand.is_array() && other.is_array()) return &operand.array() == &other.array();
        if (operand.is_object() && other.is_object()) return &operand.object_ref() == &other.object_ref();
        return operand == other && operand.type_name() == other.type_name();
    }
    throw RenderError("unknown test '" + name + "'");
}

Value get_attribute(const Value& target, const std::string& name) {
    if (target.is_object()) {
        if (!target.is_namespace()) {
            Value method = dict_method(target, name);
            if (!method.is_undefined()) return method;
        }
        const Value* found = target.object_ref().find(name);
        return found ? *found : Value();
    }
    if (target.is_string()) return string_method(target.as_string(), name);
    return Value();
}

Value get_item(const Value& target, const Value& key) {
    if (target.is_object()) {
        if (!key.is_string()) return Value();
        const Value* found = target.object_ref().find(key.as_string());
        return found ? *found : get_attribute(target, key.as_string());
    }
    if (target.is_array() && key.is_number() && !key.is_float()) {
        int64_t index = key.as_int();
        if (!normalize_index(index, target.array().size())) return Value();
        return target.array()[static_cast<size_t>(index)];
    }
    if (target.is_string()) {
        if (key.is_string()) return get_attribute(target, key.as_string());
        if (!key.is_number() || key.is_float()) return Value();
        std::u32string chars = utf8::to_u32(target.as_string());
        int64_t index = key.as_int();
        if (!normalize_index(index, chars.size())) return Value();
        return Value(utf8::from_u32(std::u32string_view(chars).substr(static_cast<size_t>(index), 1)));
    }
    return Value();
}

Value get_slice(const Value& target, const Value& start_value, const Value& stop_value, const Value& step_value) {
    const auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
    for (const Value* part : {&start_value, &stop_value, &step_value})
        if (given(*part) && (!part->is_number() || part->is_float())) throw RenderError("slice indices must be integers");
    int64_t step = given(step_value) ? step_value.as_int() : 1;
    if (step == 0) throw RenderError("slice step cannot be zero");
    std::u32string chars;
    size_t size = 0;
    if (target.is_string()) {
        chars = utf8::to_u32(target.as_string());
        size = chars.size();
    } else if (target.is_array()) {
        size = target.array().size();
    } else {
        throw RenderError("'" + target.type_name() + "' object is not subscriptable");
    }
    // Python's slice.indices().
    const auto bound_index = [&](const Value& v, int64_t fallback, int64_t low, int64_t high) {
        if (!given(v)) return fallback;
        int64_t index = v.as_int();
        if (index < 0) index += static_cast<int64_t>(size);
        return std::clamp(index, low, high);
    };
    int64_t n = static_cast<int64_t>(size);
    int64_t start = step > 0 ? bound_index(start_value, 0, 0, n) : bound_index(start_value, n - 1, -1, n - 1);
    int64_t stop = step > 0 ? bound_index(stop_value, n, 0, n) : bound_index(stop_value, -1, -1, n - 1);
    std::vector<size_t> picked;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picked.push_back(static_cast<size_t>(i));
    if (target.is_string()) {
        std::u32string out;
        for (size_t i : picked) out += chars[i];
        return Value(utf8::from_u32(out));
    }
    Array out;
    for (size_t i : picked) out.push_back(target.array()[i]);
    return Value(std::move(out));
}

Value binary_operation(const std::string& op, const Value& left, const Value& right) {
    const auto bounded = [&](std::string text) {
        if (text.size() > kMaxStringBytes) throw RenderError("a string built with " + op + " passed " + std::to_string(kMaxStringBytes >> 20) + " MiB");
        return Value(std::move(text));
    };
    if (op == "~") return bounded(left.str() + right.str());
    const auto unsupported = [&]() -> Value {
        throw RenderError("unsupported operand type(s) for " + op + ": '" + left.type_name() + "' and '" +
                          right.type_name() + "'");
    };
    if (op == "+") {
        if (left.is_string() && right.is_string()) return bounded(left.as_string() + right.as_string());
        if (left.is_array() && right.is_array()) {
            Array joined = left.array();
            joined.insert(joined.end(), right.array().begin(), right.array().end());
            return Value(std::move(joined));
        }
    }
    if (op == "*") {
        const Value* text = left.is_string() ? &left : right.is_string() ? &right : nullptr;
        const Value* times = left.is_string() ? &right : &left;
        if (text && times->is_number() && !times->is_float()) {
            const int64_t count = std::max<int64_t>(0, times->as_int());
            if (!text->as_string().empty() && uint64_t(count) > kMaxStringBytes / text->as_string().size())
                throw RenderError("a string built with * passed " + std::to_string(kMaxStringBytes >> 20) + " MiB");
            std::string out;
            for (int64_t i = 0; i < count; ++i) out += text->as_string();
            return Value(out);
        }
    }
    if (!left.is_number() || !right.is_number()) return unsupported();
    bool floating = left.is_float() || right.is_float();
    if (op == "/") {
        if (right.as_float() == 0.0) throw RenderError("division by zero");
        return Value(left.as_float() / right.as_float());
    }
    // Python's integers do not overflow and ours are 64-bit: a result beyond int64 is an error, not undefined
    // behaviour (nor a SIGFPE for INT64_MIN // -1).
    const auto overflow = [&]() -> Value { throw RenderError("integer overflow in " + op); };
    if (op == "**") {
        if (!floating && right.as_int() >= 0) {
            int64_t result = 1, base = left.as_int();
            for (int64_t exponent = right.as_int(); exponent > 0; exponent >>= 1) {
                if ((exponent & 1) && __builtin_mul_overflow(result, base, &result)) return overflow();
                if (exponent > 1 && __builtin_mul_overflow(base, base, &base)) return overflow();
            }
            return Value(result);
        }
        return Value(std::pow(left.as_float(), right.as_float()));
    }
    if (floating) {
        double a = left.as_float(), b = right.as_float();
        if (op == "+") return Value(a + b);
        if (op == "-") return Value(a - b);
        if (op == "*") return Value(a * b);
        if (b == 0.0 && (op == "//" || op == "%")) throw RenderError("division by zero");
        if (op == "//") return Value(std::floor(a / b));
        if (op == "%") return Value(a - std::floor(a / b) * b);
        return unsupported();
    }
    int64_t a = left.as_int(), b = right.as_int(), result = 0;
    if (op == "+") return __builtin_add_overflow(a, b, &result) ? overflow() : Value(result);
    if (op == "-") return __builtin_sub_overflow(a, b, &result) ? overflow() : Value(result);
    if (op == "*") return __builtin_mul_overflow(a, b, &result) ? overflow() : Value(result);
    if (b == 0 && (op == "//" || op == "%")) throw RenderError("division by zero");
    if (b == -1) {  // a / -1 traps for INT64_MIN; the remainder is always 0
        if (op == "%") return Value(int64_t(0));
        if (op == "//") return __builtin_sub_overflow(int64_t(0), a, &result) ? overflow() : Value(result);
    }
    int64_t quotient = a / b, remainder = a % b;
    if (remainder != 0 && ((remainder < 0) != (b < 0))) {
        --quotient;
        remainder += b;
    }
    if (op == "//") return Value(quotient);
    if (op == "%") return Value(remainder);
    return unsupported();
}

bool compare(const std::string& op, const Value& left, const Value& right) {
    if (op == "==") return left == right;
    if (op == "!=") return !(left == right);
    if (op == "in" || op == "not in") {
        bool found = false;
        if (right.is_string()) {
            found = right.as_string().find(require_string(left, "'in <string>'")) != std::string::npos;
        } else if (right.is_object()) {
            found = left.is_string() && right.object_ref().find(left.as_string()) != nullptr;
        } else if (right.is_array()) {
            found = std::any_of(right.array().begin(), right.array().end(), [&](const Value& v) { return v == left; });
        } else if (!right.is_undefined()) {
            throw RenderError("argument of type '" + right.type_name() + "' is not iterable");
        }
        return op == "in" ? found : !found;
    }
    int order = 0;
    if (left.is_number() && right.is_number()) {
        double a = left.as_float(), b = right.as_float();
        if (!left.is_float() && !right.is_float()) order = left.as_int() < right.as_int() ? -1 : left.as_int() > right.as_int();
        else order = a < b ? -1 : a > b;
    } else if (left.is_string() && right.is_string()) {
        int c = left.as_string().compare(right.as_string());
        order = c < 0 ? -1 : c > 0;
    } else if (left.is_array() && right.is_array()) {
        const Array &a = left.array(), &b = right.array();
        size_t i = 0;
        while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
        if (i < a.size() && i < b.size()) order = compare("<", a[i], b[i]) ? -1 : 1;
        else order = a.size() < b.size() ? -1 : a.size() > b.size();
    } else {
        throw RenderError("'" + op + "' not supported between instances of '" + left.type_name() + "' and '" +
                          right.type_name() + "'");
    }
    if (op == "<") return order < 0;
    if (op == "<=") return order <= 0;
    if (op == ">") return order > 0;
    if (op == ">=") return order >= 0;
    throw RenderError("unknown comparison '" + op + "'");
}

void add_global_functions(Object& globals) {
    globals.set("range", Value::function("range", [](CallArgs& args) {
        for (const Value& v : args.positional)
            if (!v.is_number() || v.is_float()) throw RenderError("range expects integers");
        int64_t start = 0, stop = 0, step = 1;
        if (args.positional.size() == 1) {
            stop = args.positional[0].as_int();
        } else if (args.positional.size() == 2 || args.positional.size() == 3) {
            start = args.positional[0].as_int();
            stop = args.positional[1].as_int();
            if (args.positional.size() == 3) step = args.positional[2].as_int();
        } else {
            throw RenderError("range expects 1 to 3 arguments");
        }
        if (step == 0) throw RenderError("range step must not be zero");
        Array out;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (static_cast<int64_t>(out.size()) >= kMaxRangeLength) throw RenderError("range is too long");
            out.emplace_back(i);
        }
        return Value(std::move(out));
    }));
    const auto make_mapping = [](CallArgs& args, Value result) {
        for (const Value& positional : args.positional) {
            if (!positional.is_object()) throw RenderError("expected keyword arguments or a mapping");
            for (const auto& [key, value] : positional.object_ref().items) result.object_ref().set(key, value);
        }
        for (const auto& [key, value] : args.keyword) result.object_ref().set(key, value);
        return result;
    };
    globals.set("namespace", Value::function("namespace", [make_mapping](CallArgs& args) {
        return make_mapping(args, Value::namespace_object());
    }));
    globals.set("dict", Value::function("dict", [make_mapping](CallArgs& args) { return make_mapping(args, Value::object()); }));
}

}  // namespace mwb::tok::jinja
