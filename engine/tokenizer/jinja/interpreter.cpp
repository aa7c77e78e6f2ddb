#include "engine/tokenizer/jinja/interpreter.h"

#include <cstdint>
#include <limits>
#include <unordered_map>

#include "engine/tokenizer/jinja/ast.h"
#include "engine/tokenizer/jinja/builtins.h"
#include "engine/tokenizer/jinja/lexer.h"
#include "engine/tokenizer/jinja/parser.h"

namespace mwb::tok::jinja {

struct Template::Parsed {
    std::string source;
    Body body;
};

namespace {

constexpr size_t kMaxCallDepth = 256;
// A render's budget: an exponential macro, nested loops over long ranges or a string doubled in a loop stop
// with an error within a fraction of a second instead of running for minutes or taking gigabytes. A chat
// template over a thousand messages takes a few hundred thousand steps.
constexpr uint64_t kMaxRenderSteps = 2'000'000;

// A render error pinned to the template offset of the innermost node that raised it.
struct LocatedError {
    std::string message;
    size_t offset;
};

// Rejects unknown filters and tests when the template is parsed, so that a branch never taken cannot hide them.
void check_names(const Expr& expr) {
    if (expr.kind == Expr::Kind::Filter && !is_known_filter(expr.name))
        throw SyntaxError("filter '" + expr.name + "' is not supported", expr.offset);
    if (expr.kind == Expr::Kind::Test && !is_known_test(expr.name))
        throw SyntaxError("test '" + expr.name + "' is not supported", expr.offset);
    for (const auto& item : expr.items)
        if (item) check_names(*item);
    for (const auto& [name, item] : expr.keywords) check_names(*item);
}

void check_names(const Body& body) {
    for (const auto& node : body) {
        for (const Expr* expr : {node->expr.get(), node->condition.get()})
            if (expr) check_names(*expr);
        for (const auto& [condition, branch] : node->branches) {
            check_names(*condition);
            check_names(branch);
        }
        for (const auto& parameter : node->parameters)
            if (parameter.default_value) check_names(*parameter.default_value);
        check_names(node->body);
        check_names(node->else_body);
    }
}

class Interpreter {
public:
    explicit Interpreter(std::unordered_map<std::string, Value> globals) { frames_.push_back(std::move(globals)); }

    void render(const Body& body, std::string& out) {
        if (exec(body, out) != Flow::Normal) throw LocatedError{"'break' or 'continue' outside a loop", 0};
    }

private:
    enum class Flow { Normal, Break, Continue };

    Flow exec(const Body& body, std::string& out) {
        for (const auto& node : body) {
            Flow flow = exec(*node, out);
            if (flow != Flow::Normal) return flow;
        }
        return Flow::Normal;
    }

    Flow exec(const Node& node, std::string& out) {
        try {
            count_step();
            const Flow flow = exec_node(node, out);
            if (out.size() > kMaxStringBytes)
                throw RenderError("the template's output passed " + std::to_string(kMaxStringBytes >> 20) + " MiB: stopped");
            return flow;
        } catch (const RenderError& error) {
            throw LocatedError{error.what(), node.offset};
        }
    }

    void count_step() {
        if (++steps_ > kMaxRenderSteps)
            throw RenderError("the template ran more than " + std::to_string(kMaxRenderSteps) + " steps: stopped (a runaway loop or recursion)");
    }

    Flow exec_node(const Node& node, std::string& out) {
        switch (node.kind) {
            case Node::Kind::Text: out += node.text; return Flow::Normal;
            case Node::Kind::Output: out += eval(*node.expr).str(); return Flow::Normal;
            case Node::Kind::If:
                for (const auto& [condition, body] : node.branches)
                    if (eval(*condition).truthy()) return exec(body, out);
                return exec(node.else_body, out);
            case Node::Kind::For: return exec_for(node, out);
            case Node::Kind::Set: exec_set(node); return Flow::Normal;
            case Node::Kind::SetBlock: {
                std::string captured;
                Flow flow = exec(node.body, captured);
                assign(node.targets[0], Value(std::move(captured)));
                return flow;
            }
            case Node::Kind::Macro: define_macro(node); return Flow::Normal;
            case Node::Kind::Break: return Flow::Break;
            case Node::Kind::Continue: return Flow::Continue;
            case Node::Kind::Scope: return exec(node.body, out);
        }
        return Flow::Normal;
    }

    void bind_targets(const std::vector<std::string>& targets, const Value& value) {
        if (targets.size() == 1) {
            assign(targets[0], value);
            return;
        }
        if (!value.is_array() || value.array().size() != targets.size())
            throw RenderError("cannot unpack " + value.type_name() + " into " + std::to_string(targets.size()) + " names");
        for (size_t i = 0; i < targets.size(); ++i) assign(targets[i], value.array()[i]);
    }

    Flow exec_for(const Node& node, std::string& out) {
        Value iterable = eval(*node.expr);
        if (iterable.is_none()) throw RenderError("'NoneType' object is not iterable");
        Array items = iterate(iterable);
        steps_ += items.size();  // a loop costs its length even when its body is empty
        count_step();
        if (node.condition) {
            Array kept;
            for (const Value& item : items) {
                frames_.emplace_back();
                bind_targets(node.targets, item);
                bool keep = eval(*node.condition).truthy();
                frames_.pop_back();
                if (keep) kept.push_back(item);
            }
            items = std::move(kept);
        }
        if (items.empty()) return exec(node.else_body, out);
        const int64_t length = static_cast<int64_t>(items.size());
        for (int64_t i = 0; i < length; ++i) {
            // Every iteration gets a fresh scope: assignments in the body do not survive it (as in Jinja).
            frames_.emplace_back();
            Value loop = Value::object();
            Object& fields = loop.object_ref();
            fields.set("index", Value(i + 1));
            fields.set("index0", Value(i));
            fields.set("revindex", Value(length - i));
            fields.set("revindex0", Value(length - i - 1));
            fields.set("first", Value(i == 0));
            fields.set("last", Value(i == length - 1));
            fields.set("length", Value(length));
            fields.set("depth", Value(1));
            fields.set("depth0", Value(0));
            if (i > 0) fields.set("previtem", items[static_cast<size_t>(i - 1)]);
            if (i + 1 < length) fields.set("nextitem", items[static_cast<size_t>(i + 1)]);
            fields.set("cycle", Value::function("cycle", [i](CallArgs& args) {
                if (args.positional.empty()) throw RenderError("loop.cycle needs at least one argument");
                return args.positional[static_cast<size_t>(i) % args.positional.size()];
            }));
            assign("loop", loop);
            bind_targets(node.targets, items[static_cast<size_t>(i)]);
            Flow flow = exec(node.body, out);
            frames_.pop_back();
            if (flow == Flow::Break) break;
        }
        return Flow::Normal;
    }

    void exec_set(const Node& node) {
        Value value = eval(*node.expr);
        if (node.attribute.empty()) {
            bind_targets(node.targets, value);
            return;
        }
        Value target = lookup(node.targets[0]);
        if (!target.is_namespace())
            throw RenderError("cannot assign attribute '" + node.attribute + "' on '" + node.targets[0] +
                              "', which is not a namespace()");
        // Values share their containers, so this is the one place a cycle could form (and never be freed).
        if (holds(value, &target.object_ref(), 0))
            throw RenderError("cannot store namespace '" + node.targets[0] + "' inside itself");
        target.object_ref().set(node.attribute, std::move(value));
    }

    static bool holds(const Value& value, const Object* object, int depth) {
        if (depth > kMaxValueDepth) return false;
        if (value.is_object()) {
            if (&value.object_ref() == object) return true;
            for (const auto& [key, item] : value.object_ref().items)
                if (holds(item, object, depth + 1)) return true;
        } else if (value.is_array()) {
            for (const Value& item : value.array())
                if (holds(item, object, depth + 1)) return true;
        }
        return false;
    }

    void define_macro(const Node& node) {
        const Node* macro = &node;
        assign(node.text, Value::function(node.text, [this, macro](CallArgs& args) { return call_macro(*macro, args); }));
    }

    Value call_macro(const Node& macro, CallArgs& args) {
        if (args.positional.size() > macro.parameters.size())
            throw RenderError("macro '" + macro.text + "' takes at most " + std::to_string(macro.parameters.size()) +
                              " arguments");
        if (frames_.size() > kMaxCallDepth) throw RenderError("macro calls nested too deeply");
        std::unordered_map<std::string, Value> frame;
        for (const auto& [name, value] : args.keyword) {
            bool known = false;
            for (const auto& parameter : macro.parameters) known = known || parameter.name == name;
            if (!known) throw RenderError("macro '" + macro.text + "' has no parameter '" + name + "'");
        }
        for (size_t i = 0; i < macro.parameters.size(); ++i) {
            const MacroParameter& parameter = macro.parameters[i];
            Value value;
            if (i < args.positional.size()) value = args.positional[i];
            for (const auto& [name, keyword_value] : args.keyword)
                if (name == parameter.name) value = keyword_value;
            if (value.is_undefined() && parameter.default_value) value = eval(*parameter.default_value);
            frame[parameter.name] = std::move(value);
        }
        frames_.push_back(std::move(frame));
        std::string out;
        Flow flow = Flow::Normal;
        try {
            flow = exec(macro.body, out);
        } catch (...) {
            frames_.pop_back();
            throw;
        }
        frames_.pop_back();
        if (flow != Flow::Normal) throw RenderError("'break' or 'continue' outside a loop");
        return Value(std::move(out));
    }

    void assign(const std::string& name, Value value) { frames_.back()[name] = std::move(value); }

    Value lookup(const std::string& name) const {
        for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
            auto found = it->find(name);
            if (found != it->end()) return found->second;
        }
        return Value();
    }

    Value eval(const Expr& expr) {
        try {
            count_step();
            return eval_expr(expr);
        } catch (const RenderError& error) {
            throw LocatedError{error.what(), expr.offset};
        }
    }

    // How an undefined operand is named in errors.
    static std::string describe(const Expr& expr) {
        if (expr.kind == Expr::Kind::Name) return "'" + expr.name + "' is undefined";
        if (expr.kind == Expr::Kind::Attribute) return "'" + expr.name + "' is undefined";
        return "value is undefined";
    }

    CallArgs eval_arguments(const Expr& expr, size_t first) {
        CallArgs args;
        for (size_t i = first; i < expr.items.size(); ++i) args.positional.push_back(eval(*expr.items[i]));
        for (const auto& [name, item] : expr.keywords) args.keyword.emplace_back(name, eval(*item));
        return args;
    }

    Value eval_expr(const Expr& expr) {
        switch (expr.kind) {
            case Expr::Kind::Literal: return expr.value;
            case Expr::Kind::Name: return lookup(expr.name);
            case Expr::Kind::List:
            case Expr::Kind::Tuple: {
                Array items;
                for (const auto& item : expr.items) items.push_back(eval(*item));
                return Value(std::move(items));
            }
            case Expr::Kind::Dict: {
                Value dict = Value::object();
                for (size_t i = 0; i + 1 < expr.items.size(); i += 2) {
                    Value key = eval(*expr.items[i]);
                    if (!key.is_string()) throw RenderError("dict keys must be strings, got " + key.type_name());
                    dict.object_ref().set(key.as_string(), eval(*expr.items[i + 1]));
                }
                return dict;
            }
            case Expr::Kind::Attribute: {
                Value target = eval(*expr.items[0]);
                if (target.is_undefined()) throw RenderError(describe(*expr.items[0]));
                return get_attribute(target, expr.name);
            }
            case Expr::Kind::Item: {
                Value target = eval(*expr.items[0]);
                if (target.is_undefined()) throw RenderError(describe(*expr.items[0]));
                return get_item(target, eval(*expr.items[1]));
            }
            case Expr::Kind::Slice: {
                Value target = eval(*expr.items[0]);
                if (target.is_undefined()) throw RenderError(describe(*expr.items[0]));
                const auto part = [&](size_t i) { return expr.items[i] ? eval(*expr.items[i]) : Value(); };
                return get_slice(target, part(1), part(2), part(3));
            }
            case Expr::Kind::Call: {
                Value callee = eval(*expr.items[0]);
                if (callee.is_undefined()) throw RenderError(describe(*expr.items[0]));
                if (!callee.is_callable()) throw RenderError("'" + callee.type_name() + "' object is not callable");
                CallArgs args = eval_arguments(expr, 1);
                return callee.callable().call(args);
            }
            case Expr::Kind::Filter: {
                Value operand = eval(*expr.items[0]);
                CallArgs args = eval_arguments(expr, 1);
                return apply_filter(expr.name, operand, args);
            }
            case Expr::Kind::Test: {
                Value operand = eval(*expr.items[0]);
                CallArgs args = eval_arguments(expr, 1);
                return Value(apply_test(expr.name, operand, args.positional) != expr.negated);
            }
            case Expr::Kind::Unary: {
                Value operand = eval(*expr.items[0]);
                if (expr.name == "not") return Value(!operand.truthy());
                if (!operand.is_number()) throw RenderError("bad operand type for unary " + expr.name + ": '" + operand.type_name() + "'");
                if (expr.name == "+") return operand.is_float() ? Value(operand.as_float()) : Value(operand.as_int());
                if (operand.is_float()) return Value(-operand.as_float());
                if (operand.as_int() == std::numeric_limits<int64_t>::min()) throw RenderError("integer overflow in unary -");
                return Value(-operand.as_int());
            }
            case Expr::Kind::Binary: {
                Value left = eval(*expr.items[0]);
                if (expr.name == "and") return left.truthy() ? eval(*expr.items[1]) : left;
                if (expr.name == "or") return left.truthy() ? left : eval(*expr.items[1]);
                return binary_operation(expr.name, left, eval(*expr.items[1]));
            }
            case Expr::Kind::Compare: {
                Value left = eval(*expr.items[0]);
                for (size_t i = 0; i < expr.operators.size(); ++i) {
                    Value right = eval(*expr.items[i + 1]);
                    if (!compare(expr.operators[i], left, right)) return Value(false);
                    left = std::move(right);
                }
                return Value(true);
            }
            case Expr::Kind::Conditional:
                if (eval(*expr.items[1]).truthy()) return eval(*expr.items[0]);
                return expr.items[2] ? eval(*expr.items[2]) : Value();
        }
        return Value();
    }

    std::vector<std::unordered_map<std::string, Value>> frames_;
    uint64_t steps_ = 0;
};

}  // namespace

Result<Template> Template::parse(std::string_view source) {
    auto parsed = std::make_shared<Parsed>();
    parsed->source = normalize_source(source);
    try {
        parsed->body = jinja::parse(lex(parsed->source));
        check_names(parsed->body);
    } catch (const SyntaxError& error) {
        return make_error("chat template " + position_of(parsed->source, error.offset) + ": " + error.what());
    }
    Template result;
    result.parsed_ = std::move(parsed);
    return result;
}

Result<std::string> Template::render(const std::vector<std::pair<std::string, Value>>& variables) const {
    Object builtins;
    add_global_functions(builtins);
    std::unordered_map<std::string, Value> globals;
    for (auto& [name, value] : builtins.items) globals[name] = value;
    for (const auto& [name, value] : variables) globals[name] = value;
    std::string out;
    try {
        Interpreter(std::move(globals)).render(parsed_->body, out);
    } catch (const LocatedError& error) {
        return make_error("chat template " + position_of(parsed_->source, error.offset) + ": " + error.message);
    } catch (const std::bad_alloc&) {
        return make_error("chat template: rendering ran out of memory");
    } catch (const std::exception& error) {  // a value misused in a way no check above names: an error, never a crash
        return make_error(std::string("chat template: ") + error.what());
    }
    return out;
}

}  // namespace mwb::tok::jinja
