// The chat-template language, feature by feature, against hand-written expectations (Jinja2 with
// transformers' settings: trim_blocks, lstrip_blocks, tojson with ensure_ascii=False).
#include <QtTest>

#include "engine/tokenizer/chat_template.h"

using mwb::tok::ChatTemplate;
using mwb::tok::TemplateJson;

namespace {

mwb::Result<std::string> try_render(const std::string& source, const TemplateJson& variables = TemplateJson::object(),
                                    const TemplateJson& messages = TemplateJson::array(), bool add_generation_prompt = false) {
    auto parsed = ChatTemplate::parse(source);
    if (!parsed) return parsed.error();
    TemplateJson special = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
    return parsed->render(messages, add_generation_prompt, special, variables);
}

std::string render(const std::string& source, const TemplateJson& variables = TemplateJson::object(),
                   const TemplateJson& messages = TemplateJson::array(), bool add_generation_prompt = false) {
    auto text = try_render(source, variables, messages, add_generation_prompt);
    if (!text) qFatal("%s", text.error().message.c_str());
    return text.value();
}

std::string error_of(const std::string& source, const TemplateJson& variables = TemplateJson::object()) {
    auto text = try_render(source, variables);
    if (text) qFatal("expected an error from %s, got %s", source.c_str(), text->c_str());
    return text.error().message;
}

}  // namespace

class TestChatTemplate : public QObject {
    Q_OBJECT

private slots:
    void ifElifElse() {
        const std::string source = "{% if x > 2 %}big{% elif x == 2 %}two{% else %}small{% endif %}";
        QCOMPARE(render(source, {{"x", 3}}), std::string("big"));
        QCOMPARE(render(source, {{"x", 2}}), std::string("two"));
        QCOMPARE(render(source, {{"x", 1}}), std::string("small"));
    }

    void forLoopVariables() {
        QCOMPARE(render("{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ x }}"
                        "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}{{ loop.length }};{% endfor %}"),
                 std::string("10aF3;21b3;32cL3;"));
        QCOMPARE(render("{% for x in [1,2,3,4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}"), std::string("2/2 4/2 "));
        QCOMPARE(render("{% for x in [] %}x{% else %}empty{% endfor %}"), std::string("empty"));
        QCOMPARE(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), std::string("a=1;b=2;"));
        QCOMPARE(render("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
                 std::string("13"));
    }

    void setAndScoping() {
        QCOMPARE(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"), std::string("231"));
        QCOMPARE(render("{% if true %}{% set y = 'kept' %}{% endif %}{{ y }}"), std::string("kept"));
        QCOMPARE(render("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), std::string("21"));
        QCOMPARE(render("{% set block %}in{{ 1 + 1 }}{% endset %}[{{ block }}]"), std::string("[in2]"));
    }

    void namespaceAttributes() {
        QCOMPARE(render("{% set ns = namespace(count=0, last='') %}{% for x in ['a', 'b'] %}{% set ns.count = ns.count + 1 %}"
                        "{% set ns.last = x %}{% endfor %}{{ ns.count }}{{ ns.last }}"),
                 std::string("2b"));
    }

    void macros() {
        QCOMPARE(render("{% macro greet(name, punctuation='!') %}Hi {{ name }}{{ punctuation }}{% endmacro %}"
                        "{{ greet('Ann') }} {{ greet('Bo', punctuation='?') }} {{ greet(name='Cy') }}"),
                 std::string("Hi Ann! Hi Bo? Hi Cy!"));
    }

    void whitespaceControl() {
        QCOMPARE(render("a  {%- if true -%}  b  {%- endif -%}  c"), std::string("abc"));
        QCOMPARE(render("a  {{- 'b' -}}  c"), std::string("abc"));
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
        QCOMPARE(render("{% for x in [1, 2] %}\n    {% if x %}\n{{ x }}\n    {% endif %}\n{% endfor %}\n"), std::string("1\n2\n"));
        QCOMPARE(render("  {{ 'v' }}\n"), std::string("  v"));   // variables are not stripped; the final newline is dropped
        QCOMPARE(render("a  {# note #}\nb"), std::string("a  b"));
        QCOMPARE(render("x\n  {%+ if true %}y{% endif %}"), std::string("x\n  y"));
        QCOMPARE(render("{% raw %}{{ not evaluated }}{% endraw %}"), std::string("{{ not evaluated }}"));
    }

    void literalsAndAccess() {
        QCOMPARE(render("{{ [1, 'a', none, true, 1.0, {'k': 'v'}] }}"), std::string("[1, 'a', None, True, 1.0, {'k': 'v'}]"));
        QCOMPARE(render("{{ m.role }}|{{ m['content'] }}|{{ m.missing }}|{{ m.tool_calls[0].function.name }}",
                        {{"m", {{"role", "user"}, {"content", "hi"}, {"tool_calls", {{{"function", {{"name", "f"}}}}}}}}}),
                 std::string("user|hi||f"));
        QCOMPARE(render("{{ 'it\\'s\\n' }}{{ \"tab\\there\" }}"), std::string("it's\ntab\there"));
        QCOMPARE(render("{{ (1, 2)[1] }}{{ [10, 20, 30][-1] }}{{ 'héllo'[1] }}"), std::string("230é"));
    }

    void slicing() {
        QCOMPARE(render("{{ [1, 2, 3, 4][1:3] }}{{ [1, 2, 3, 4][::-1] }}{{ [1, 2, 3, 4, 5][::2] }}{{ [1, 2, 3][-2:] }}"),
                 std::string("[2, 3][4, 3, 2, 1][1, 3, 5][2, 3]"));
        QCOMPARE(render("{{ 'héllo'[1:3] }}{{ 'abc'[::-1] }}"), std::string("élcba"));
        QCOMPARE(render("{% for m in messages[::-1] %}{{ m.content }}{% endfor %}", {},
                        TemplateJson::parse(R"([{"role":"user","content":"1"},{"role":"assistant","content":"2"}])")),
                 std::string("21"));
    }

    void operators() {
        QCOMPARE(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 10 / 5 }}"),
                 std::string("7 9 3 -4 2 1024 3.5 2.0"));
        QCOMPARE(render("{{ 'a' + 'b' }}{{ [1] + [2] }}{{ 'a' ~ 1 ~ none ~ true }}{{ '=' * 3 }}"), std::string("ab[1, 2]a1NoneTrue==="));
        QCOMPARE(render("{{ 1 < 2 }}{{ 2 <= 1 }}{{ 'a' != 'b' }}{{ 3 > 2 > 1 }}{{ 1 == 1.0 }}"), std::string("TrueFalseTrueTrueTrue"));
        QCOMPARE(render("{{ 'x' in 'xyz' }}{{ 2 not in [1, 3] }}{{ 'k' in {'k': 1} }}"), std::string("TrueTrueTrue"));
        QCOMPARE(render("{{ not false }}{{ true and 'v' }}{{ false or 'w' }}{{ none or 0 }}"), std::string("Truevw0"));
        QCOMPARE(render("{{ 'y' if x else 'n' }}{{ 'y' if not x else 'n' }}[{{ 'z' if x is none }}]", {{"x", true}}),
                 std::string("yn[]"));
    }

    void tests() {
        QCOMPARE(render("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ x is none }}{{ n is none }}",
                        {{"x", 1}, {"n", nullptr}}),
                 std::string("TrueFalseTrueFalseTrue"));
        QCOMPARE(render("{{ 'a' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}"
                        "{{ 'a' is iterable }}{{ 1 is iterable }}"),
                 std::string("TrueFalseTrueFalseTrueTrueFalse"));
        QCOMPARE(render("{{ x is not none }}{{ x is not string }}{{ 4 is divisibleby 2 }}{{ 3 is odd }}", {{"x", "s"}}),
                 std::string("TrueFalseTrueTrue"));
    }

    void filters() {
        QCOMPARE(render("[{{ '  a b  ' | trim }}]{{ [1, 2] | length }}{{ 'héllo' | length }}{{ {'a': 1} | length }}"),
                 std::string("[a b]251"));
        QCOMPARE(render("{{ [1, 2, 3] | join(', ') }}|{{ ['a', 'b'] | join }}"), std::string("1, 2, 3|ab"));
        QCOMPARE(render("{{ 'aaa' | replace('a', 'b') }}{{ 'Hi' | upper }}{{ 'Hi' | lower }}"), std::string("bbbHIhi"));
        QCOMPARE(render("{{ 'éa' | upper }}{{ 'ÉA' | lower }}"), std::string("ÉAéa"));
        QCOMPARE(render("{{ y | default('d') }}{{ '' | default('e') }}{{ '' | default('f', true) }}{{ n | default('g') }}",
                        {{"n", nullptr}}),
                 std::string("dfNone"));
        QCOMPARE(render("{{ [1, 2, 3] | first }}{{ [1, 2, 3] | last }}{{ 'abc' | list }}{{ {'k': 1} | list }}"),
                 std::string("13['a', 'b', 'c']['k']"));
        QCOMPARE(render("{{ ['a', 'b'] | map('upper') | join }}"), std::string("AB"));
    }

    void toJsonLikeTransformers() {
        const TemplateJson value = TemplateJson::parse("{\"b\": [1, 2.5, null, true, \"é\\n\\\"<\"], \"a\": {}}");
        // Keys keep their order and non-ASCII text stays as is (ensure_ascii=False); no HTML escaping.
        QCOMPARE(render("{{ v | tojson }}", {{"v", value}}), std::string("{\"b\": [1, 2.5, null, true, \"é\\n\\\"<\"], \"a\": {}}"));
        QCOMPARE(render("{{ v | tojson(indent=2) }}", {{"v", TemplateJson::parse(R"({"b": [1, {}], "a": []})")}}),
                 std::string("{\n  \"b\": [\n    1,\n    {}\n  ],\n  \"a\": []\n}"));
        QCOMPARE(render("{{ v | tojson(sort_keys=true) }}", {{"v", TemplateJson::parse(R"({"b": 1, "a": 2})")}}),
                 std::string("{\"a\": 2, \"b\": 1}"));
    }

    void stringMethods() {
        QCOMPARE(render("{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}"),
                 std::string("['a', 'b', '', 'c']['a', 'b']['a', 'b c']"));
        QCOMPARE(render("[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxaxx'.strip('x') }}]"),
                 std::string("[x][x  ][  x][a]"));
        QCOMPARE(render("{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}"),
                 std::string("TrueTrueTrue"));
        QCOMPARE(render("{{ 'a-b-c'.replace('-', '+') }}{{ 'a-b-c'.replace('-', '', 1) }}"), std::string("a+b+cab-c"));
        QCOMPARE(render("{{ c.split('</think>')[-1].lstrip('\\n') }}", {{"c", "<think>x</think>\n\nanswer"}}),
                 std::string("answer"));
    }

    void chatVariables() {
        const std::string source =
            "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{% if m.content is none %}[tools:{{ m.tool_calls | length }}]"
            "{% else %}{{ m.content }}{% endif %}{% if m.reasoning_content is defined %}({{ m.reasoning_content }}){% endif %}"
            "{% endfor %}{% if tools is not none %}T{{ tools | length }}{% endif %}{% if add_generation_prompt %}<assistant>{% endif %}"
            "{{ eos_token }}{{ custom | default('') }}";
        std::vector<mwb::tok::ChatMessage> messages(2);
        messages[0].role = "user";
        messages[0].content = "hi";
        messages[1].role = "assistant";
        messages[1].reasoning_content = "think";
        messages[1].tool_calls = TemplateJson::parse(R"([{"type": "function", "function": {"name": "f", "arguments": "{}"}}])");
        TemplateJson list = TemplateJson::array();
        for (const auto& message : messages) list.push_back(message.to_json());
        QCOMPARE(render(source, {}, list, true), std::string("<s><user>hi<assistant>[tools:1](think)<assistant></s>"));
        QCOMPARE(render(source, {{"tools", TemplateJson::array({1, 2})}, {"custom", "!"}}, list, false),
                 std::string("<s><user>hi<assistant>[tools:1](think)T2</s>!"));
    }

    void errorsCarryTheTemplatePosition() {
        QVERIFY(error_of("{{ raise_exception('bad role') }}").find("1:4") != std::string::npos);
        QVERIFY(error_of("{{ raise_exception('bad role') }}").find("bad role") != std::string::npos);
        QVERIFY(error_of("line1\n{% if x %}never closed").find("unexpected end of template") != std::string::npos);
        QVERIFY(error_of("a\nb {{ x | nosuchfilter }}").find("2:8") != std::string::npos);
        QVERIFY(error_of("a\nb {{ x | nosuchfilter }}").find("filter 'nosuchfilter' is not supported") != std::string::npos);
        QVERIFY(error_of("{% include 'x' %}").find("1:4: unsupported statement 'include'") != std::string::npos);
        QVERIFY(error_of("{{ 1 + }}").find("1:8") != std::string::npos);
        QVERIFY(error_of("{{ x.y }}").find("'x' is undefined") != std::string::npos);
        QVERIFY(error_of("{{ 'a' + 1 }}").find("unsupported operand") != std::string::npos);
        QVERIFY(error_of("{% set s = 'x' %}{% set s.a = 1 %}").find("not a namespace") != std::string::npos);
        QVERIFY(error_of("{{ 'unterminated }}").find("1:4: unterminated string literal") != std::string::npos);
        QVERIFY(error_of("{% endif %}").find("unexpected '{% endif %}'") != std::string::npos);
    }
};

QTEST_APPLESS_MAIN(TestChatTemplate)
#include "test_tokenizer_chat_template.moc"
