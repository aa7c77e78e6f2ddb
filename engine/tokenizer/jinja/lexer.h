// Splits a chat template into text and tag tokens, applying Jinja's whitespace control the way
// transformers configures it (trim_blocks and lstrip_blocks on, keep_trailing_newline off).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mwb::tok::jinja {

// A syntax error at a byte offset of the (newline-normalized) template source.
class SyntaxError : public std::runtime_error {
public:
    SyntaxError(const std::string& message, size_t offset) : std::runtime_error(message), offset(offset) {}
    size_t offset;
};

enum class TokenKind { Text, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End };

struct Token {
    TokenKind kind;
    std::string text;  // the literal text, the unescaped string, the name, number or operator
    size_t offset;
};

// Template sources are read with "\r\n" and "\r" turned into "\n" and one trailing newline dropped, as Jinja does.
std::string normalize_source(std::string_view source);

// Throws SyntaxError.
std::vector<Token> lex(std::string_view source);

// 1-based "line:column" (column in characters) of a byte offset.
std::string position_of(std::string_view source, size_t offset);

}  // namespace mwb::tok::jinja
