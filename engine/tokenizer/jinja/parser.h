// Builds the syntax tree of a chat template from its tokens.
#pragma once

#include <vector>

#include "engine/tokenizer/jinja/ast.h"
#include "engine/tokenizer/jinja/lexer.h"

namespace mwb::tok::jinja {

// Throws SyntaxError for malformed or unsupported syntax.
Body parse(const std::vector<Token>& tokens);

}  // namespace mwb::tok::jinja
