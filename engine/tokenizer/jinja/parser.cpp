#include "engine/tokenizer/jinja/parser.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace mwb::tok::jinja {
namespace {

ExprPtr make_expr(Expr::Kind kind, size_t offset) {
    auto expr = std::make_unique<Expr>();
    expr->kind = kind;
    expr->offset = offset;
    return expr;
}

class Parser {
public:
    explicit Parser(const std::vector<Token>& tokens) : tokens_(tokens) {}

    Body parse_template() {
        std::string end;
        Body body = parse_until({}, &end);
        return body;
    }

private:
    // Bounds the recursion on hostile templates such as thousands of nested brackets.
    struct DepthGuard {
        size_t* depth;
        ~DepthGuard() { --*depth; }
    };
    DepthGuard enter() {
        if (++depth_ > kMaxNesting) {
            --depth_;
            fail("template nested too deeply", peek());
        }
        return DepthGuard{&depth_};
    }

    // A node whose children are attached: its depth is checked, so that chains of operators, attributes,
    // subscripts, filters and conditionals (built in loops, not by recursion) cannot grow a tree deeper than
    // evaluation and destruction can recurse through.
    ExprPtr checked(ExprPtr expr) {
        size_t deepest = 0;
        for (const auto& item : expr->items)
            if (item) deepest = std::max(deepest, item->depth);
        for (const auto& [name, value] : expr->keywords)
            if (value) deepest = std::max(deepest, value->depth);
        expr->depth = deepest + 1;
        if (expr->depth > kMaxExpressionDepth) fail("template nested too deeply (an expression " + std::to_string(expr->depth) + " levels deep)", peek());
        return expr;
    }

    const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
    const Token& next() {
        const Token& token = tokens_[pos_];
        if (pos_ + 1 < tokens_.size()) ++pos_;
        return token;
    }
    bool is_operator(const char* op, size_t ahead = 0) const {
        return peek(ahead).kind == TokenKind::Operator && peek(ahead).text == op;
    }
    bool is_name(const char* name, size_t ahead = 0) const {
        return peek(ahead).kind == TokenKind::Name && peek(ahead).text == name;
    }
    [[noreturn]] void fail(const std::string& message, const Token& at) const { throw SyntaxError(message, at.offset); }
    static std::string describe(const Token& token) {
        switch (token.kind) {
            case TokenKind::End: return "end of template";
            case TokenKind::BlockEnd: return "'%}'";
            case TokenKind::VariableEnd: return "'}}'";
            case TokenKind::String: return "string literal";
            case TokenKind::Text: return "template text";
            default: return "'" + token.text + "'";
        }
    }
    void expect_operator(const char* op) {
        if (!is_operator(op)) fail(std::string("expected '") + op + "', found " + describe(peek()), peek());
        next();
    }
    void expect_block_end() {
        if (peek().kind != TokenKind::BlockEnd) fail("expected '%}', found " + describe(peek()), peek());
        next();
    }
    std::string expect_name() {
        if (peek().kind != TokenKind::Name) fail("expected a name, found " + describe(peek()), peek());
        return next().text;
    }

    // Parses nodes until a block tag whose keyword is one of `ends`; consumes "{%" and that keyword.
    Body parse_until(std::initializer_list<std::string_view> ends, std::string* found) {
        Body body;
        while (true) {
            const Token& token = peek();
            if (token.kind == TokenKind::End) {
                if (ends.size() != 0) {
                    std::string expected;
                    for (auto end : ends) expected += (expected.empty() ? "" : " or ") + std::string("{% ") + std::string(end) + " %}";
                    fail("unexpected end of template, expected " + expected, token);
                }
                return body;
            }
            if (token.kind == TokenKind::Text) {
                auto node = std::make_unique<Node>();
                node->kind = Node::Kind::Text;
                node->offset = token.offset;
                node->text = next().text;
                body.push_back(std::move(node));
            } else if (token.kind == TokenKind::VariableBegin) {
                auto node = std::make_unique<Node>();
                node->kind = Node::Kind::Output;
                node->offset = next().offset;
                node->expr = parse_expression();
                if (peek().kind != TokenKind::VariableEnd) fail("expected '}}', found " + describe(peek()), peek());
                next();
                body.push_back(std::move(node));
            } else if (token.kind == TokenKind::BlockBegin) {
                const Token& keyword = peek(1);
                if (keyword.kind != TokenKind::Name) fail("expected a statement name after '{%'", keyword);
                if (std::find(ends.begin(), ends.end(), keyword.text) != ends.end()) {
                    next();
                    *found = next().text;
                    return body;
                }
                body.push_back(parse_statement());
            } else {
                fail("unexpected " + describe(token), token);
            }
        }
    }

    std::unique_ptr<Node> parse_statement() {
        DepthGuard guard = enter();
        size_t offset = next().offset;  // "{%"
        const Token& keyword = next();
        auto node = std::make_unique<Node>();
        node->offset = offset;
        const std::string& word = keyword.text;
        if (word == "if") {
            node->kind = Node::Kind::If;
            ExprPtr condition = parse_expression();
            expect_block_end();
            std::string end;
            Body body = parse_until({"elif", "else", "endif"}, &end);
            node->branches.emplace_back(std::move(condition), std::move(body));
            while (end == "elif") {
                ExprPtr elif_condition = parse_expression();
                expect_block_end();
                Body elif_body = parse_until({"elif", "else", "endif"}, &end);
                node->branches.emplace_back(std::move(elif_condition), std::move(elif_body));
            }
            if (end == "else") {
                expect_block_end();
                node->else_body = parse_until({"endif"}, &end);
            }
            expect_block_end();
        } else if (word == "for") {
            node->kind = Node::Kind::For;
            node->targets.push_back(expect_name());
            while (is_operator(",")) {
                next();
                node->targets.push_back(expect_name());
            }
            if (!is_name("in")) fail("expected 'in' in for loop, found " + describe(peek()), peek());
            next();
            node->expr = parse_tuple_or_expression(false);
            if (is_name("if")) {
                next();
                node->condition = parse_expression(false);
            }
            if (is_name("recursive")) fail("recursive for loops are not supported", peek());
            expect_block_end();
            std::string end;
            node->body = parse_until({"else", "endfor"}, &end);
            if (end == "else") {
                expect_block_end();
                node->else_body = parse_until({"endfor"}, &end);
            }
            expect_block_end();
        } else if (word == "set") {
            node->kind = Node::Kind::Set;
            node->targets.push_back(expect_name());
            if (is_operator(".")) {
                next();
                node->attribute = expect_name();
            } else {
                while (is_operator(",")) {
                    next();
                    node->targets.push_back(expect_name());
                }
            }
            if (is_operator("=")) {
                next();
                node->expr = parse_tuple_or_expression(true);
                expect_block_end();
            } else {
                if (!node->attribute.empty() || node->targets.size() != 1)
                    fail("expected '=' in set statement, found " + describe(peek()), peek());
                expect_block_end();
                node->kind = Node::Kind::SetBlock;
                std::string end;
                node->body = parse_until({"endset"}, &end);
                expect_block_end();
            }
        } else if (word == "macro") {
            node->kind = Node::Kind::Macro;
            node->text = expect_name();
            expect_operator("(");
            while (!is_operator(")")) {
                MacroParameter parameter;
                parameter.name = expect_name();
                if (is_operator("=")) {
                    next();
                    parameter.default_value = parse_expression();
                }
                node->parameters.push_back(std::move(parameter));
                if (!is_operator(")")) expect_operator(",");
            }
            next();
            expect_block_end();
            std::string end;
            node->body = parse_until({"endmacro"}, &end);
            if (peek().kind == TokenKind::Name) next();  // {% endmacro name %}
            expect_block_end();
        } else if (word == "break" || word == "continue") {
            node->kind = word == "break" ? Node::Kind::Break : Node::Kind::Continue;
            expect_block_end();
        } else if (word == "generation") {
            node->kind = Node::Kind::Scope;
            expect_block_end();
            std::string end;
            node->body = parse_until({"endgeneration"}, &end);
            expect_block_end();
        } else if (word.rfind("end", 0) == 0 || word == "elif" || word == "else") {
            fail("unexpected '{% " + word + " %}'", keyword);
        } else {
            fail("unsupported statement '" + word + "'", keyword);
        }
        return node;
    }

    // `a, b` without brackets is a tuple where Jinja allows it (for ... in, set ... =).
    ExprPtr parse_tuple_or_expression(bool allow_conditional) {
        size_t offset = peek().offset;
        ExprPtr first = parse_expression(allow_conditional);
        if (!is_operator(",")) return first;
        auto tuple = make_expr(Expr::Kind::Tuple, offset);
        tuple->items.push_back(std::move(first));
        while (is_operator(",")) {
            next();
            if (peek().kind == TokenKind::BlockEnd || is_name("if")) break;
            tuple->items.push_back(parse_expression(allow_conditional));
        }
        return checked(std::move(tuple));
    }

    ExprPtr parse_expression(bool allow_conditional = true) {
        DepthGuard guard = enter();
        ExprPtr expr = parse_or();
        while (allow_conditional && is_name("if")) {
            auto conditional = make_expr(Expr::Kind::Conditional, next().offset);
            ExprPtr condition = parse_or();
            ExprPtr otherwise;
            if (is_name("else")) {
                next();
                otherwise = parse_expression();
            }
            conditional->items.push_back(std::move(expr));
            conditional->items.push_back(std::move(condition));
            conditional->items.push_back(std::move(otherwise));
            expr = checked(std::move(conditional));
        }
        return expr;
    }

    ExprPtr binary(const std::string& op, size_t offset, ExprPtr left, ExprPtr right) {
        auto expr = make_expr(Expr::Kind::Binary, offset);
        expr->name = op;
        expr->items.push_back(std::move(left));
        expr->items.push_back(std::move(right));
        return checked(std::move(expr));
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (is_name("or")) {
            size_t offset = next().offset;
            left = binary("or", offset, std::move(left), parse_and());
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (is_name("and")) {
            size_t offset = next().offset;
            left = binary("and", offset, std::move(left), parse_not());
        }
        return left;
    }

    ExprPtr parse_not() {
        DepthGuard guard = enter();
        if (is_name("not")) {
            auto expr = make_expr(Expr::Kind::Unary, next().offset);
            expr->name = "not";
            expr->items.push_back(parse_not());
            return checked(std::move(expr));
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        size_t offset = peek().offset;
        ExprPtr first = parse_math1();
        ExprPtr compare;
        while (true) {
            std::string op;
            if (peek().kind == TokenKind::Operator &&
                (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == "<=" ||
                 peek().text == ">" || peek().text == ">=")) {
                op = next().text;
            } else if (is_name("in")) {
                next();
                op = "in";
            } else if (is_name("not") && is_name("in", 1)) {
                next();
                next();
                op = "not in";
            } else {
                break;
            }
            if (!compare) {
                compare = make_expr(Expr::Kind::Compare, offset);
                compare->items.push_back(std::move(first));
            }
            compare->operators.push_back(op);
            compare->items.push_back(parse_math1());
        }
        return compare ? checked(std::move(compare)) : std::move(first);
    }

    ExprPtr parse_math1() {
        ExprPtr left = parse_concat();
        while (is_operator("+") || is_operator("-")) {
            const Token& op = next();
            left = binary(op.text, op.offset, std::move(left), parse_concat());
        }
        return left;
    }

    ExprPtr parse_concat() {
        ExprPtr left = parse_math2();
        while (is_operator("~")) {
            size_t offset = next().offset;
            left = binary("~", offset, std::move(left), parse_math2());
        }
        return left;
    }

    ExprPtr parse_math2() {
        ExprPtr left = parse_pow();
        while (is_operator("*") || is_operator("/") || is_operator("//") || is_operator("%")) {
            const Token& op = next();
            left = binary(op.text, op.offset, std::move(left), parse_pow());
        }
        return left;
    }

    ExprPtr parse_pow() {
        ExprPtr left = parse_unary(true);
        while (is_operator("**")) {
            size_t offset = next().offset;
            left = binary("**", offset, std::move(left), parse_unary(true));
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard = enter();
        ExprPtr expr;
        if (is_operator("-") || is_operator("+")) {
            const Token& op = next();
            expr = make_expr(Expr::Kind::Unary, op.offset);
            expr->name = op.text;
            expr->items.push_back(parse_unary(false));
            expr = checked(std::move(expr));
        } else {
            expr = parse_primary();
        }
        expr = parse_postfix(std::move(expr));
        if (with_filter) expr = parse_filters_and_tests(std::move(expr));
        return expr;
    }

    ExprPtr parse_primary() {
        const Token& token = peek();
        switch (token.kind) {
            case TokenKind::Name: {
                next();
                const std::string& name = token.text;
                auto literal = make_expr(Expr::Kind::Literal, token.offset);
                if (name == "true" || name == "True") {
                    literal->value = Value(true);
                } else if (name == "false" || name == "False") {
                    literal->value = Value(false);
                } else if (name == "none" || name == "None") {
                    literal->value = Value(nullptr);
                } else {
                    auto variable = make_expr(Expr::Kind::Name, token.offset);
                    variable->name = name;
                    return variable;
                }
                return literal;
            }
            case TokenKind::String: {
                auto literal = make_expr(Expr::Kind::Literal, token.offset);
                std::string text = next().text;
                while (peek().kind == TokenKind::String) text += next().text;
                literal->value = Value(std::move(text));
                return literal;
            }
            case TokenKind::Integer: {
                auto literal = make_expr(Expr::Kind::Literal, token.offset);
                int64_t value = 0;
                auto [ptr, ec] = std::from_chars(token.text.data(), token.text.data() + token.text.size(), value);
                if (ec != std::errc()) fail("integer literal out of range", token);
                next();
                literal->value = Value(value);
                return literal;
            }
            case TokenKind::Float: {
                auto literal = make_expr(Expr::Kind::Literal, token.offset);
                literal->value = Value(std::strtod(token.text.c_str(), nullptr));
                next();
                return literal;
            }
            case TokenKind::Operator:
                if (token.text == "(") return parse_parenthesized();
                if (token.text == "[") return parse_list();
                if (token.text == "{") return parse_dict();
                break;
            default: break;
        }
        fail("unexpected " + describe(token) + " in expression", token);
    }

    ExprPtr parse_parenthesized() {
        size_t offset = next().offset;
        if (is_operator(")")) {
            next();
            return make_expr(Expr::Kind::Tuple, offset);
        }
        ExprPtr first = parse_expression();
        if (is_operator(")")) {
            next();
            return first;
        }
        auto tuple = make_expr(Expr::Kind::Tuple, offset);
        tuple->items.push_back(std::move(first));
        while (is_operator(",")) {
            next();
            if (is_operator(")")) break;
            tuple->items.push_back(parse_expression());
        }
        expect_operator(")");
        return checked(std::move(tuple));
    }

    ExprPtr parse_list() {
        auto list = make_expr(Expr::Kind::List, next().offset);
        while (!is_operator("]")) {
            list->items.push_back(parse_expression());
            if (!is_operator("]")) expect_operator(",");
        }
        next();
        return checked(std::move(list));
    }

    ExprPtr parse_dict() {
        auto dict = make_expr(Expr::Kind::Dict, next().offset);
        while (!is_operator("}")) {
            dict->items.push_back(parse_expression());
            expect_operator(":");
            dict->items.push_back(parse_expression());
            if (!is_operator("}")) expect_operator(",");
        }
        next();
        return checked(std::move(dict));
    }

    ExprPtr parse_postfix(ExprPtr expr) {
        while (true) {
            if (is_operator(".")) {
                size_t offset = next().offset;
                const Token& member = peek();
                if (member.kind == TokenKind::Name) {
                    auto attribute = make_expr(Expr::Kind::Attribute, offset);
                    attribute->name = next().text;
                    attribute->items.push_back(std::move(expr));
                    expr = checked(std::move(attribute));
                } else if (member.kind == TokenKind::Integer) {
                    auto item = make_expr(Expr::Kind::Item, offset);
                    item->items.push_back(std::move(expr));
                    item->items.push_back(parse_primary());
                    expr = checked(std::move(item));
                } else {
                    fail("expected an attribute name after '.', found " + describe(member), member);
                }
            } else if (is_operator("[")) {
                expr = parse_subscript(std::move(expr));
            } else if (is_operator("(")) {
                expr = parse_call(std::move(expr));
            } else {
                return expr;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr target) {
        size_t offset = next().offset;
        ExprPtr start;
        if (!is_operator(":")) {
            start = parse_expression();
            if (is_operator("]")) {
                next();
                auto item = make_expr(Expr::Kind::Item, offset);
                item->items.push_back(std::move(target));
                item->items.push_back(std::move(start));
                return checked(std::move(item));
            }
        }
        expect_operator(":");
        ExprPtr stop, step;
        if (!is_operator(":") && !is_operator("]")) stop = parse_expression();
        if (is_operator(":")) {
            next();
            if (!is_operator("]")) step = parse_expression();
        }
        expect_operator("]");
        auto slice = make_expr(Expr::Kind::Slice, offset);
        slice->items.push_back(std::move(target));
        slice->items.push_back(std::move(start));
        slice->items.push_back(std::move(stop));
        slice->items.push_back(std::move(step));
        return checked(std::move(slice));
    }

    // Arguments of a call, filter or test: "(a, b, name=c)"; the "(" is the current token.
    void parse_arguments(Expr& expr) {
        expect_operator("(");
        while (!is_operator(")")) {
            if (peek().kind == TokenKind::Name && is_operator("=", 1)) {
                std::string name = next().text;
                next();
                expr.keywords.emplace_back(std::move(name), parse_expression());
            } else {
                if (!expr.keywords.empty()) fail("positional argument after keyword argument", peek());
                expr.items.push_back(parse_expression());
            }
            if (!is_operator(")")) expect_operator(",");
        }
        next();
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto call = make_expr(Expr::Kind::Call, callee->offset);
        call->items.push_back(std::move(callee));
        parse_arguments(*call);
        return checked(std::move(call));
    }

    ExprPtr parse_filters_and_tests(ExprPtr expr) {
        while (true) {
            if (is_operator("|")) {
                size_t offset = next().offset;
                auto filter = make_expr(Expr::Kind::Filter, offset);
                filter->name = expect_name();
                filter->items.push_back(std::move(expr));
                if (is_operator("(")) parse_arguments(*filter);
                expr = checked(std::move(filter));
            } else if (is_name("is")) {
                size_t offset = next().offset;
                auto test = make_expr(Expr::Kind::Test, offset);
                if (is_name("not")) {
                    next();
                    test->negated = true;
                }
                test->name = expect_name();
                test->items.push_back(std::move(expr));
                if (is_operator("(")) {
                    parse_arguments(*test);
                } else if (takes_bare_test_argument()) {
                    test->items.push_back(parse_postfix(parse_primary()));
                }
                expr = checked(std::move(test));
            } else if (is_operator("(")) {
                expr = parse_call(std::move(expr));
            } else {
                return expr;
            }
        }
    }

    // "x is divisibleby 3": one argument without parentheses.
    bool takes_bare_test_argument() const {
        const Token& token = peek();
        if (token.kind == TokenKind::String || token.kind == TokenKind::Integer || token.kind == TokenKind::Float) return true;
        if (token.kind == TokenKind::Operator) return token.text == "[" || token.text == "{";
        if (token.kind != TokenKind::Name) return false;
        static const char* const kStopWords[] = {"else", "or", "and", "if", "in", "not", "is"};
        return std::none_of(std::begin(kStopWords), std::end(kStopWords), [&](const char* w) { return token.text == w; });
    }

    static constexpr size_t kMaxNesting = 200;
    static constexpr size_t kMaxExpressionDepth = 400;

    const std::vector<Token>& tokens_;
    size_t pos_ = 0;
    size_t depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace mwb::tok::jinja
