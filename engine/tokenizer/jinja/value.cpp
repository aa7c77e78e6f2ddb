#include "engine/tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>


namespace mwb::tok::jinja {

Value Value::object() {
    Value value;
    value.data_ = std::make_shared<Object>();
    return value;
}

Value Value::namespace_object() {
    Value value = object();
    value.object_ref().is_namespace = true;
    return value;
}

Value Value::function(std::string name, std::function<Value(CallArgs&)> call) {
    Value value;
    value.data_ = std::make_shared<Callable>(Callable{std::move(name), std::move(call)});
    return value;
}

Value Value::from_json(const nlohmann::ordered_json& json) {
    switch (json.type()) {
        case nlohmann::ordered_json::value_t::null: return Value(nullptr);
        case nlohmann::ordered_json::value_t::boolean: return Value(json.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return Value(json.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: return Value(static_cast<int64_t>(json.get<uint64_t>()));
        case nlohmann::ordered_json::value_t::number_float: return Value(json.get<double>());
        case nlohmann::ordered_json::value_t::string: return Value(json.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            Array items;
            items.reserve(json.size());
            for (const auto& item : json) items.push_back(from_json(item));
            return Value(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
            Value result = object();
            for (auto it = json.begin(); it != json.end(); ++it) result.object_ref().set(it.key(), from_json(it.value()));
            return result;
        }
        default: return Value();
    }
}

bool Value::is_namespace() const { return is_object() && object_ref().is_namespace; }

int64_t Value::as_int() const {
    if (is_bool()) return as_bool() ? 1 : 0;
    if (is_float()) {
        const double number = std::get<double>(data_);
        if (!(number > -9.2e18 && number < 9.2e18)) throw RenderError("the number " + format_float(number) + " is beyond the integer range");
        return static_cast<int64_t>(number);
    }
    if (!is_int()) throw RenderError("expected an integer, got '" + type_name() + "'");
    return std::get<int64_t>(data_);
}

const std::string& Value::as_string() const {
    if (!is_string()) throw RenderError("expected a string, got '" + type_name() + "'");
    return std::get<std::string>(data_);
}

double Value::as_float() const {
    if (is_float()) return std::get<double>(data_);
    return static_cast<double>(as_int());
}

bool Value::truthy() const {
    if (is_undefined() || is_none()) return false;
    if (is_bool()) return as_bool();
    if (is_int()) return as_int() != 0;
    if (is_float()) return as_float() != 0.0;
    if (is_string()) return !as_string().empty();
    if (is_array()) return !array().empty();
    if (is_object()) return is_namespace() || !object_ref().items.empty();
    return true;
}

std::string format_float(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    char buffer[64];
    // Python switches to exponent notation from 1e16 on and below 1e-4.
    double magnitude = std::fabs(value);
    auto format = (magnitude != 0.0 && (magnitude >= 1e16 || magnitude < 1e-4)) ? std::chars_format::scientific
                                                                                 : std::chars_format::fixed;
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value, format);
    std::string text(buffer, ec == std::errc() ? end : buffer);
    if (format == std::chars_format::scientific) {
        // Python writes at least two exponent digits: 1e+16, 1e-05.
        size_t e = text.find('e');
        std::string mantissa = text.substr(0, e), exponent = text.substr(e + 1);
        char sign = exponent[0] == '-' ? '-' : '+';
        if (exponent[0] == '-' || exponent[0] == '+') exponent.erase(0, 1);
        if (exponent.size() < 2) exponent.insert(0, "0");
        return mantissa + "e" + sign + exponent;
    }
    if (text.find('.') == std::string::npos) text += ".0";
    return text;
}

namespace {

std::string python_quote(const std::string& text) {
    bool has_single = text.find('\'') != std::string::npos, has_double = text.find('"') != std::string::npos;
    char quote = has_single && !has_double ? '"' : '\'';
    std::string out(1, quote);
    for (char c : text) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c == quote) {
                    out += '\\';
                    out += c;
                } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof(buffer), "\\x%02x", static_cast<unsigned char>(c));
                    out += buffer;
                } else {
                    out += c;
                }
        }
    }
    out += quote;
    return out;
}

void append_json_string(std::string& out, const std::string& text) {
    out += '"';
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned char>(c));
                    out += buffer;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
}

void append_json(std::string& out, const Value& value, const std::optional<std::string>& indent, bool sort_keys,
                 const std::string& item_separator, const std::string& key_separator, int depth) {
    if (depth > kMaxValueDepth) throw RenderError("tojson: the value is nested more than " + std::to_string(kMaxValueDepth) + " levels deep (does it contain itself?)");
    const auto newline = [&](int level) {
        out += '\n';
        for (int i = 0; i < level; ++i) out += *indent;
    };
    if (value.is_none()) {
        out += "null";
    } else if (value.is_bool()) {
        out += value.as_bool() ? "true" : "false";
    } else if (value.is_int()) {
        out += std::to_string(value.as_int());
    } else if (value.is_float()) {
        double number = value.as_float();
        if (std::isnan(number))
            out += "NaN";
        else if (std::isinf(number))
            out += number > 0 ? "Infinity" : "-Infinity";
        else
            out += format_float(number);
    } else if (value.is_string()) {
        append_json_string(out, value.as_string());
    } else if (value.is_array()) {
        const Array& items = value.array();
        if (items.empty()) {
            out += "[]";
            return;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
            if (i > 0) out += item_separator;
            if (indent) newline(depth + 1);
            append_json(out, items[i], indent, sort_keys, item_separator, key_separator, depth + 1);
        }
        if (indent) newline(depth);
        out += ']';
    } else if (value.is_object()) {
        std::vector<const std::pair<std::string, Value>*> entries;
        for (const auto& entry : value.object_ref().items) entries.push_back(&entry);
        if (entries.empty()) {
            out += "{}";
            return;
        }
        if (sort_keys)
            std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out += '{';
        for (size_t i = 0; i < entries.size(); ++i) {
            if (i > 0) out += item_separator;
            if (indent) newline(depth + 1);
            append_json_string(out, entries[i]->first);
            out += key_separator;
            append_json(out, entries[i]->second, indent, sort_keys, item_separator, key_separator, depth + 1);
        }
        if (indent) newline(depth);
        out += '}';
    } else {
        throw RenderError("Object of type " + value.type_name() + " is not JSON serializable");
    }
}

}  // namespace

std::string Value::str() const {
    if (is_undefined()) return "";
    if (is_string()) return as_string();
    return repr();
}

std::string Value::repr() const { return repr_at(0); }

std::string Value::repr_at(int depth) const {
    if (depth > kMaxValueDepth) throw RenderError("a value nested more than " + std::to_string(kMaxValueDepth) + " levels deep cannot be printed (does it contain itself?)");
    if (is_undefined()) return "";
    if (is_none()) return "None";
    if (is_bool()) return as_bool() ? "True" : "False";
    if (is_int()) return std::to_string(as_int());
    if (is_float()) return format_float(as_float());
    if (is_string()) return python_quote(as_string());
    if (is_array()) {
        std::string out = "[";
        const Array& items = array();
        for (size_t i = 0; i < items.size(); ++i) {
            if (i > 0) out += ", ";
            out += items[i].repr_at(depth + 1);
        }
        return out + "]";
    }
    if (is_object()) {
        if (is_namespace()) return "<Namespace>";
        std::string out = "{";
        bool first = true;
        for (const auto& [key, item] : object_ref().items) {
            if (!first) out += ", ";
            first = false;
            out += python_quote(key) + ": " + item.repr_at(depth + 1);
        }
        return out + "}";
    }
    return "<function " + callable().name + ">";
}

std::string Value::type_name() const {
    if (is_undefined()) return "Undefined";
    if (is_none()) return "NoneType";
    if (is_bool()) return "bool";
    if (is_int()) return "int";
    if (is_float()) return "float";
    if (is_string()) return "str";
    if (is_array()) return "list";
    if (is_namespace()) return "Namespace";
    if (is_object()) return "dict";
    return "function";
}

bool Value::operator==(const Value& other) const {
    if (is_number() && other.is_number()) {
        if (is_float() || other.is_float()) return as_float() == other.as_float();
        return as_int() == other.as_int();
    }
    if (data_.index() != other.data_.index()) return false;
    if (is_undefined() || is_none()) return true;
    if (is_string()) return as_string() == other.as_string();
    if (is_array()) {
        const Array &a = array(), &b = other.array();
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
            if (!(a[i] == b[i])) return false;
        return true;
    }
    if (is_object()) {
        const Object &a = object_ref(), &b = other.object_ref();
        if (&a == &b) return true;
        if (a.is_namespace || b.is_namespace || a.items.size() != b.items.size()) return false;
        for (const auto& [key, item] : a.items) {
            const Value* match = b.find(key);
            if (!match || !(*match == item)) return false;
        }
        return true;
    }
    return &callable() == &other.callable();
}

const Value* Object::find(std::string_view key) const {
    for (const auto& entry : items)
        if (entry.first == key) return &entry.second;
    return nullptr;
}

void Object::set(const std::string& key, Value value) {
    for (auto& entry : items) {
        if (entry.first == key) {
            entry.second = std::move(value);
            return;
        }
    }
    items.emplace_back(key, std::move(value));
}

std::string to_json(const Value& value, const std::optional<std::string>& indent, bool sort_keys,
                    const std::string& item_separator, const std::string& key_separator) {
    std::string out;
    append_json(out, value, indent, sort_keys, item_separator, key_separator, 0);
    return out;
}

}  // namespace mwb::tok::jinja
