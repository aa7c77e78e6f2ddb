// Values of the chat-template language: Python's None / bool / int / float / str / list / dict plus
// Jinja's undefined, namespaces and callables, with Python's printing and truthiness rules.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace mwb::tok::jinja {

// Printing or serialising a value stops this deep: a namespace can be made to contain itself.
constexpr int kMaxValueDepth = 256;

// A template error raised while rendering; the interpreter adds the template position.
class RenderError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Value;
using Array = std::vector<Value>;
struct Object;
struct Callable;

struct CallArgs {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> keyword;
};

class Value {
public:
    struct Undefined {};

    Value() = default;  // undefined
    Value(std::nullptr_t) : data_(nullptr) {}
    Value(bool value) : data_(value) {}
    Value(int64_t value) : data_(value) {}
    Value(int value) : data_(static_cast<int64_t>(value)) {}
    Value(double value) : data_(value) {}
    Value(std::string value) : data_(std::move(value)) {}
    Value(const char* value) : data_(std::string(value)) {}
    Value(Array value) : data_(std::make_shared<Array>(std::move(value))) {}

    static Value object();
    static Value namespace_object();
    static Value function(std::string name, std::function<Value(CallArgs&)> call);
    static Value from_json(const nlohmann::ordered_json& json);

    bool is_undefined() const { return std::holds_alternative<Undefined>(data_); }
    bool is_none() const { return std::holds_alternative<std::nullptr_t>(data_); }
    bool is_bool() const { return std::holds_alternative<bool>(data_); }
    bool is_int() const { return std::holds_alternative<int64_t>(data_); }
    bool is_float() const { return std::holds_alternative<double>(data_); }
    bool is_number() const { return is_int() || is_float() || is_bool(); }
    bool is_string() const { return std::holds_alternative<std::string>(data_); }
    bool is_array() const { return std::holds_alternative<std::shared_ptr<Array>>(data_); }
    bool is_object() const { return std::holds_alternative<std::shared_ptr<Object>>(data_); }
    bool is_callable() const { return std::holds_alternative<std::shared_ptr<Callable>>(data_); }
    bool is_namespace() const;

    bool as_bool() const { return std::get<bool>(data_); }
    int64_t as_int() const;  // bools count as 0 / 1, as in Python; RenderError for non-numbers and huge floats
    double as_float() const;
    const std::string& as_string() const;  // RenderError for any other type
    Array& array() const { return *std::get<std::shared_ptr<Array>>(data_); }
    Object& object_ref() const { return *std::get<std::shared_ptr<Object>>(data_); }
    const Callable& callable() const { return *std::get<std::shared_ptr<Callable>>(data_); }

    bool truthy() const;
    std::string str() const;   // Python str(), with undefined printing as ""
    std::string repr() const;  // Python repr()
    std::string type_name() const;

    bool operator==(const Value& other) const;

private:
    std::string repr_at(int depth) const;
    std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::string, std::shared_ptr<Array>,
                 std::shared_ptr<Object>, std::shared_ptr<Callable>>
        data_;
};

// A dict (insertion-ordered, like Python's) or a namespace() object.
struct Object {
    std::vector<std::pair<std::string, Value>> items;
    bool is_namespace = false;

    const Value* find(std::string_view key) const;
    void set(const std::string& key, Value value);
};

struct Callable {
    std::string name;
    std::function<Value(CallArgs&)> call;
};

// Python's repr of a float (shortest round-trip form, "1.0" rather than "1").
std::string format_float(double value);

// transformers' tojson: json.dumps(value, ensure_ascii=False, indent=indent, separators=..., sort_keys=...).
// `indent` is the text repeated per nesting level; nullopt keeps everything on one line.
std::string to_json(const Value& value, const std::optional<std::string>& indent, bool sort_keys,
                    const std::string& item_separator, const std::string& key_separator);

}  // namespace mwb::tok::jinja
