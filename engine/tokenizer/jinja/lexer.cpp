#include "engine/tokenizer/jinja/lexer.h"

#include <cstdint>

#include "engine/tokenizer/utf8.h"

namespace mwb::tok::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

size_t skip_spaces(std::string_view source, size_t pos) {
    while (pos < source.size() && is_space(source[pos])) ++pos;
    return pos;
}

// Python's unicode-escape decoding of a string literal body; unknown escapes keep their backslash.
std::string unescape(std::string_view body, size_t offset) {
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (c != '\\' || i + 1 == body.size()) {
            out += c;
            continue;
        }
        char e = body[++i];
        const auto hex = [&](size_t digits) {
            if (i + digits >= body.size())
                throw SyntaxError("truncated \\" + std::string(1, e) + " escape in string literal", offset + i);
            uint32_t value = 0;
            for (size_t k = 1; k <= digits; ++k) {
                char h = i + k < body.size() ? body[i + k] : '\0';
                int digit = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                if (digit < 0) throw SyntaxError("bad \\" + std::string(1, e) + " escape in string literal", offset + i);
                value = value * 16 + static_cast<uint32_t>(digit);
            }
            i += digits;
            if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
                throw SyntaxError("escape outside the Unicode range in string literal", offset + i);
            utf8::append(out, value);
        };
        switch (e) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case 'a': out += '\a'; break;
            case '0': out += '\0'; break;
            case '\\': out += '\\'; break;
            case '\'': out += '\''; break;
            case '"': out += '"'; break;
            case '\n': break;
            case 'x': hex(2); break;
            case 'u': hex(4); break;
            case 'U': hex(8); break;
            default:
                out += '\\';
                out += e;
        }
    }
    return out;
}

class Lexer {
public:
    explicit Lexer(std::string_view source) : source_(source) {}

    std::vector<Token> run() {
        size_t pos = 0;
        bool line_starting = true;
        while (pos < source_.size()) {
            size_t tag = find_tag(pos);
            std::string text(source_.substr(pos, tag - pos));
            if (tag == source_.size()) {
                emit_text(std::move(text), pos);
                break;
            }
            char kind = source_[tag + 1];
            char modifier = tag + 2 < source_.size() ? source_[tag + 2] : '\0';
            bool has_modifier = modifier == '-' || modifier == '+';
            if (modifier == '-') {
                size_t end = text.size();
                while (end > 0 && is_space(text[end - 1])) --end;
                text.resize(end);
            } else if (modifier != '+' && kind != '{') {
                size_t line_start = text.rfind('\n');
                line_start = line_start == std::string::npos ? 0 : line_start + 1;
                if ((line_start > 0 || line_starting) && line_start < text.size()) {
                    bool blank = true;
                    for (size_t i = line_start; i < text.size(); ++i) blank = blank && is_space(text[i]);
                    if (blank) text.resize(line_start);
                }
            }
            emit_text(std::move(text), pos);
            size_t inner = tag + 2 + (has_modifier ? 1 : 0);
            if (kind == '#')
                pos = lex_comment(tag, inner);
            else if (kind == '%' && is_raw_start(inner))
                pos = lex_raw(tag, inner);
            else
                pos = lex_tag(kind, tag, inner);
            line_starting = pos > 0 && source_[pos - 1] == '\n';
        }
        tokens_.push_back({TokenKind::End, "", source_.size()});
        return std::move(tokens_);
    }

private:
    size_t find_tag(size_t pos) const {
        while (true) {
            size_t brace = source_.find('{', pos);
            if (brace == std::string_view::npos || brace + 1 >= source_.size()) return source_.size();
            char next = source_[brace + 1];
            if (next == '{' || next == '%' || next == '#') return brace;
            pos = brace + 1;
        }
    }

    void emit_text(std::string text, size_t offset) {
        if (!text.empty()) tokens_.push_back({TokenKind::Text, std::move(text), offset});
    }

    // Consumes a closing tag's whitespace control: "-" strips all whitespace after it, "+" keeps it,
    // and a plain block or comment end swallows one newline (trim_blocks).
    size_t after_end(size_t end_pos, char sign, bool trims_newline) const {
        if (sign == '-') return skip_spaces(source_, end_pos);
        if (sign != '+' && trims_newline && end_pos < source_.size() && source_[end_pos] == '\n') return end_pos + 1;
        return end_pos;
    }

    size_t lex_comment(size_t tag, size_t inner) {
        size_t close = source_.find("#}", inner);
        if (close == std::string_view::npos) throw SyntaxError("missing end of comment tag", tag);
        char sign = close > inner && (source_[close - 1] == '-' || source_[close - 1] == '+') ? source_[close - 1] : '\0';
        return after_end(close + 2, sign, true);
    }

    bool is_raw_start(size_t inner) const {
        size_t pos = skip_spaces(source_, inner);
        if (source_.compare(pos, 3, "raw") != 0 || (pos + 3 < source_.size() && is_name_char(source_[pos + 3])))
            return false;
        pos = skip_spaces(source_, pos + 3);
        if (pos < source_.size() && source_[pos] == '-') ++pos;
        return source_.compare(pos, 2, "%}") == 0;
    }

    // {% raw %}...{% endraw %}: the body is text, untouched.
    size_t lex_raw(size_t tag, size_t inner) {
        size_t pos = skip_spaces(source_, inner) + 3;
        pos = skip_spaces(source_, pos);
        char sign = source_[pos] == '-' ? '-' : '\0';
        pos = after_end(pos + (sign ? 3 : 2), sign, true);
        size_t search = pos;
        while (true) {
            size_t open = source_.find("{%", search);
            if (open == std::string_view::npos) throw SyntaxError("missing {% endraw %}", tag);
            size_t p = open + 2;
            char open_sign = p < source_.size() && (source_[p] == '-' || source_[p] == '+') ? source_[p++] : '\0';
            p = skip_spaces(source_, p);
            if (source_.compare(p, 6, "endraw") != 0) {
                search = open + 2;
                continue;
            }
            p = skip_spaces(source_, p + 6);
            char close_sign = p < source_.size() && (source_[p] == '-' || source_[p] == '+') ? source_[p++] : '\0';
            if (source_.compare(p, 2, "%}") != 0) throw SyntaxError("malformed {% endraw %}", open);
            std::string body(source_.substr(pos, open - pos));
            if (open_sign == '-') {
                size_t end = body.size();
                while (end > 0 && is_space(body[end - 1])) --end;
                body.resize(end);
            }
            emit_text(std::move(body), pos);
            return after_end(p + 2, close_sign, true);
        }
    }

    size_t lex_tag(char kind, size_t tag, size_t pos) {
        bool is_block = kind == '%';
        tokens_.push_back({is_block ? TokenKind::BlockBegin : TokenKind::VariableBegin, "", tag});
        std::vector<char> brackets;
        while (true) {
            pos = skip_spaces(source_, pos);
            if (pos >= source_.size())
                throw SyntaxError(is_block ? "missing '%}' to close the tag" : "missing '}}' to close the expression", tag);
            if (brackets.empty()) {
                char sign = source_[pos] == '-' || source_[pos] == '+' ? source_[pos] : '\0';
                size_t close = pos + (sign ? 1 : 0);
                std::string_view end_marker = is_block ? "%}" : "}}";
                if (source_.compare(close, 2, end_marker) == 0 && (is_block || sign != '+')) {
                    tokens_.push_back({is_block ? TokenKind::BlockEnd : TokenKind::VariableEnd, "", pos});
                    return after_end(close + 2, sign, is_block);
                }
            }
            pos = lex_expression_token(pos, brackets);
        }
    }

    size_t lex_expression_token(size_t pos, std::vector<char>& brackets) {
        char c = source_[pos];
        if (is_name_start(c)) {
            size_t end = pos;
            while (end < source_.size() && is_name_char(source_[end])) ++end;
            tokens_.push_back({TokenKind::Name, std::string(source_.substr(pos, end - pos)), pos});
            return end;
        }
        if (is_digit(c)) return lex_number(pos);
        if (c == '\'' || c == '"') {
            size_t end = pos + 1;
            while (end < source_.size() && source_[end] != c) end += source_[end] == '\\' ? 2 : 1;
            if (end >= source_.size()) throw SyntaxError("unterminated string literal", pos);
            std::string_view body = source_.substr(pos + 1, end - pos - 1);
            tokens_.push_back({TokenKind::String, unescape(body, pos + 1), pos});
            return end + 1;
        }
        static const char* const kTwoCharOperators[] = {"//", "**", "==", "!=", "<=", ">="};
        for (const char* op : kTwoCharOperators) {
            if (source_.compare(pos, 2, op) == 0) {
                tokens_.push_back({TokenKind::Operator, op, pos});
                return pos + 2;
            }
        }
        static const std::string_view kOneCharOperators = "+-/*%~[](){}<>=.:|,";
        if (kOneCharOperators.find(c) == std::string_view::npos)
            throw SyntaxError(std::string("unexpected character '") + c + "'", pos);
        if (c == '(' || c == '[' || c == '{') {
            brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
        } else if (c == ')' || c == ']' || c == '}') {
            if (brackets.empty() || brackets.back() != c) throw SyntaxError(std::string("unexpected '") + c + "'", pos);
            brackets.pop_back();
        }
        tokens_.push_back({TokenKind::Operator, std::string(1, c), pos});
        return pos + 1;
    }

    size_t lex_number(size_t pos) {
        const auto digits_end = [&](size_t p) {
            while (p < source_.size() && (is_digit(source_[p]) || (source_[p] == '_' && p + 1 < source_.size() && is_digit(source_[p + 1])))) ++p;
            return p;
        };
        size_t end = digits_end(pos);
        bool is_float = false;
        // After "." (attribute access such as items.0) a number is always an integer.
        bool after_dot = !tokens_.empty() && tokens_.back().kind == TokenKind::Operator && tokens_.back().text == ".";
        if (!after_dot && end + 1 < source_.size() && source_[end] == '.' && is_digit(source_[end + 1])) {
            end = digits_end(end + 1);
            is_float = true;
        }
        if (!after_dot && end < source_.size() && (source_[end] == 'e' || source_[end] == 'E')) {
            size_t exponent = end + 1;
            if (exponent < source_.size() && (source_[exponent] == '+' || source_[exponent] == '-')) ++exponent;
            if (exponent < source_.size() && is_digit(source_[exponent])) {
                end = digits_end(exponent);
                is_float = true;
            }
        }
        std::string text;
        for (size_t i = pos; i < end; ++i)
            if (source_[i] != '_') text += source_[i];
        tokens_.push_back({is_float ? TokenKind::Float : TokenKind::Integer, std::move(text), pos});
        return end;
    }

    std::string_view source_;
    std::vector<Token> tokens_;
};

}  // namespace

std::string normalize_source(std::string_view source) {
    std::string out;
    out.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            out += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            out += source[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

std::vector<Token> lex(std::string_view source) { return Lexer(source).run(); }

std::string position_of(std::string_view source, size_t offset) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < offset && i < source.size(); ++i) {
        if (source[i] == '\n') {
            ++line;
            column = 1;
        } else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) {
            ++column;
        }
    }
    return std::to_string(line) + ":" + std::to_string(column);
}

}  // namespace mwb::tok::jinja
