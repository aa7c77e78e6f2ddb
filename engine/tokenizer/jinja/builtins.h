// The filters, tests, methods, operators and global functions of the chat-template language, with
// Python's semantics. Errors are thrown as RenderError.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/jinja/value.h"

namespace mwb::tok::jinja {

// The largest string a render may build or output (a chat prompt is far smaller).
constexpr uint64_t kMaxStringBytes = uint64_t(64) << 20;

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

Value apply_filter(const std::string& name, const Value& operand, CallArgs& args);
bool apply_test(const std::string& name, const Value& operand, const std::vector<Value>& args);

// `target.name`: a dict entry or namespace attribute, or a bound string / dict method; undefined if none.
Value get_attribute(const Value& target, const std::string& name);
// `target[key]`: undefined when missing or out of range.
Value get_item(const Value& target, const Value& key);
// `target[start:stop:step]` with undefined / none parts left out.
Value get_slice(const Value& target, const Value& start, const Value& stop, const Value& step);

// + - * / // % ** ~ on two values.
Value binary_operation(const std::string& op, const Value& left, const Value& right);
// == != < <= > >= in, not in.
bool compare(const std::string& op, const Value& left, const Value& right);

// The items a for loop visits: list items, dict keys, string characters; nothing for undefined.
Array iterate(const Value& value);

// range(), namespace(), dict().
void add_global_functions(Object& globals);

}  // namespace mwb::tok::jinja
