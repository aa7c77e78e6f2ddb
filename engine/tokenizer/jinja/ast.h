// Syntax tree of a parsed chat template.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/jinja/value.h"

namespace mwb::tok::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind {
        Literal,      // value
        Name,         // name
        List,         // items
        Tuple,        // items
        Dict,         // items as key, value, key, value, ...
        Attribute,    // items[0].name
        Item,         // items[0][items[1]]
        Slice,        // items[0][items[1]:items[2]:items[3]], absent parts null
        Call,         // items[0](items[1..], keywords)
        Filter,       // items[0] | name(items[1..], keywords)
        Test,         // items[0] is [not] name(items[1..])
        Unary,        // name ("-", "+", "not") items[0]
        Binary,       // items[0] name items[1]: + - * / // % ** ~ and or
        Compare,      // items[0] operators[0] items[1] operators[1] items[2] ... (chained as in Python)
        Conditional,  // items[0] if items[1] else items[2] (null: undefined)
    };
    Kind kind;
    size_t offset;
    Value value;
    std::string name;
    bool negated = false;
    std::vector<ExprPtr> items;
    std::vector<std::pair<std::string, ExprPtr>> keywords;
    std::vector<std::string> operators;
    size_t depth = 1;  // the longest path to a leaf, bounded by the parser (evaluation and destruction recurse)
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct MacroParameter {
    std::string name;
    ExprPtr default_value;  // null: required
};

struct Node {
    enum class Kind {
        Text,      // text
        Output,    // {{ expr }}
        If,        // branches (condition, body); else_body
        For,       // targets in expr [if condition] body; else_body
        Set,       // targets = expr, or namespace.attribute = expr
        SetBlock,  // {% set targets[0] %}body{% endset %}
        Macro,     // name(parameters) body
        Break,
        Continue,
        Scope,     // body rendered as is ({% generation %})
    };
    Kind kind;
    size_t offset;
    std::string text;
    ExprPtr expr;
    ExprPtr condition;
    std::vector<std::string> targets;
    std::string attribute;  // Set on a namespace: targets[0].attribute
    std::vector<std::pair<ExprPtr, Body>> branches;
    Body body;
    Body else_body;
    std::vector<MacroParameter> parameters;
};

}  // namespace mwb::tok::jinja
