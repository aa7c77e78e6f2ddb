// A parsed chat template and its renderer (a Jinja subset with Python value semantics).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/result.h"
#include "engine/tokenizer/jinja/value.h"

namespace mwb::tok::jinja {

struct Node;

class Template {
public:
    // Errors read "chat template line:column: message".
    static Result<Template> parse(std::string_view source);

    // Renders with `variables` visible as globals next to range(), namespace() and dict().
    Result<std::string> render(const std::vector<std::pair<std::string, Value>>& variables) const;

private:
    struct Parsed;
    std::shared_ptr<const Parsed> parsed_;
};

}  // namespace mwb::tok::jinja
