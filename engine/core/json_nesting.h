// A bound on JSON nesting, checked on the text before it is parsed: the code that walks parsed JSON (tokenizer
// components such as a Sequence of Sequences, chat messages, template values) recurses, and a file nested
// 100,000 levels deep would overflow the stack instead of giving an error.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "engine/core/result.h"

namespace mwb {

constexpr size_t kMaxJsonNesting = 256;

inline Status check_json_nesting(std::string_view text, const std::string& what, size_t max_depth = kMaxJsonNesting) {
    size_t depth = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) return make_error(what + " is nested more than " + std::to_string(max_depth) + " levels deep");
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return {};
}

}  // namespace mwb
