// Malformed tokenizer.json, unsupported components, broken templates and hostile input: each must give a
// clear error (naming the component or the template line:column), never a crash. Runs under ASan/UBSan.
#include <QtTest>

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/streaming_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

using nlohmann::json;

namespace {

json minimal_tokenizer() {
    return {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
            {"added_tokens", json::array({{{"id", 3}, {"content", "<s>"}, {"special", true}}})},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
            {"decoder", {{"type", "ByteLevel"}}}};
}

std::string load_error(const std::string& tokenizer_json, const std::string& config_json = "") {
    auto tokenizer = mwb::tok::Tokenizer::from_json(tokenizer_json, config_json);
    if (tokenizer.ok()) qFatal("expected an error loading %s", tokenizer_json.c_str());
    return tokenizer.error().message;
}

std::string with(const char* key, const json& value) {
    json root = minimal_tokenizer();
    root[key] = value;
    return root.dump();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// "chat template LINE:COLUMN: ..."
bool has_template_position(const std::string& message) {
    const std::string prefix = "chat template ";
    if (message.compare(0, prefix.size(), prefix) != 0) return false;
    size_t colon = message.find(':', prefix.size());
    return colon != std::string::npos && colon > prefix.size() && std::isdigit(static_cast<unsigned char>(message[prefix.size()])) &&
           std::isdigit(static_cast<unsigned char>(message[colon + 1]));
}

std::string read_text(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream contents;
    contents << file.rdbuf();
    return contents.str();
}

}  // namespace

class TestTokenizerBadInput : public QObject {
    Q_OBJECT

private slots:
    void minimalTokenizerLoads() {
        auto tokenizer = mwb::tok::Tokenizer::from_json(minimal_tokenizer().dump(), "");
        QVERIFY(tokenizer.ok());
        QCOMPARE(tokenizer->encode("ab", false).value(), std::vector<int32_t>{2});
    }

    void brokenJson() {
        QVERIFY(contains(load_error("{\"model\": "), "tokenizer.json: not valid JSON"));
        QVERIFY(contains(load_error("[1, 2]"), "tokenizer.json: the top level must be a JSON object"));
        QVERIFY(contains(load_error("{}"), "tokenizer.json: no 'model'"));
        QVERIFY(contains(load_error(minimal_tokenizer().dump(), "{oops"), "tokenizer_config.json: not valid JSON"));
    }

    // Each of these ended in an uncaught exception or a stack overflow; now each is an error that says what.
    void hostileTokenizerFilesAreErrors() {
        const std::string tokenizer = minimal_tokenizer().dump();
        std::string nested_sequence = R"({"type": "Sequence", "normalizers": [)";
        std::string closing = "]}";
        for (int i = 0; i < 100000; ++i) nested_sequence += R"({"type": "Sequence", "normalizers": [)", closing += "]}";
        std::string deep = minimal_tokenizer().dump();
        deep.insert(deep.size() - 1, R"(,"normalizer": )" + nested_sequence + closing);
        QVERIFY(contains(load_error(deep), "nested more than 256 levels deep"));
        std::string huge_number = tokenizer;
        huge_number.replace(huge_number.find("\"id\":3"), 6, "\"id\":1e400");
        QVERIFY(contains(load_error(huge_number), "tokenizer.json: not valid JSON"));
        QVERIFY(contains(load_error(tokenizer, R"({"model_max_length": 1e400})"), "tokenizer_config.json: not valid JSON"));
        QVERIFY(contains(load_error(tokenizer, R"({"chat_template": [{"name": 5, "template": "x"}]})"), "tokenizer files:"));
    }

    // The added-token matcher walks a token at each position where it could start: a 100 KB token made a 100 KB
    // text take 20 s, so such a token is refused when the tokenizer loads.
    void hugeAddedTokensAreRefused() {
        json added = minimal_tokenizer()["added_tokens"];
        added.push_back({{"id", 4}, {"content", std::string(100000, 'a')}, {"special", false}});
        QVERIFY(contains(load_error(with("added_tokens", added)), "token 4 is 100000 bytes long; at most 1024"));
        added.back()["content"] = std::string(1024, 'a');
        QVERIFY(mwb::tok::Tokenizer::from_json(with("added_tokens", added), "").ok());
    }

    void postProcessorIdsMustBeTokens() {
        const json special = {{"<s>", {{"id", "<s>"}, {"ids", {999}}, {"tokens", {"<s>"}}}}};
        const json processor = {{"type", "TemplateProcessing"},
                                {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                                {"special_tokens", special}};
        QVERIFY(contains(load_error(with("post_processor", processor)), "post_processor adds token id 999, outside the vocabulary of 4 ids"));
        json negative = processor;
        negative["special_tokens"]["<s>"]["ids"] = {-1};
        QVERIFY(contains(load_error(with("post_processor", negative)), "not a token id"));
    }

    void hostileTemplateValuesAreErrors() {
        const auto render_error = [](const std::string& source) {
            auto parsed = mwb::tok::ChatTemplate::parse(source);
            if (!parsed.ok()) return parsed.error().message;
            auto text = parsed->render(json::array(), false, json::object(), json::object());
            return text.ok() ? std::string("rendered: ") + *text : text.error().message;
        };
        QVERIFY(contains(render_error("{{ 'a,b'.split(',', 'x') }}"), "expected an integer, got 'str'"));
        QVERIFY(contains(render_error("{% set ns = namespace(a=1) %}{% set ns.b = ns %}{{ ns|tojson }}"), "inside itself"));
        QVERIFY(contains(render_error("{% set ns = namespace(a=1) %}{% set ns.b = [1, {'x': ns}] %}"), "inside itself"));
        QVERIFY(contains(render_error("{{ range(1e30) }}"), "range expects integers"));
    }

    void unsupportedComponentsAreNamed() {
        QVERIFY(contains(load_error(with("pre_tokenizer", {{"type", "Whitespace"}})),
                         "tokenizer.json: pre_tokenizer type 'Whitespace' is not supported"));
        QVERIFY(contains(load_error(with("normalizer", {{"type", "BertNormalizer"}})),
                         "tokenizer.json: normalizer type 'BertNormalizer' is not supported"));
        QVERIFY(contains(load_error(with("decoder", {{"type", "WordPiece"}})),
                         "tokenizer.json: decoder type 'WordPiece' is not supported"));
        QVERIFY(contains(load_error(with("post_processor", {{"type", "Unknown"}})),
                         "tokenizer.json: post_processor type 'Unknown' is not supported"));
        QVERIFY(contains(load_error(with("model", {{"type", "Unigram"}, {"vocab", json::array()}})),
                         "tokenizer.json: model type 'Unigram' is not supported"));
        QVERIFY(contains(load_error(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}})),
                         "pre_tokenizer 'Split': behavior 'Sideways' is not supported"));
        QVERIFY(contains(load_error(with("model", {{"type", "BPE"}, {"dropout", 0.1}, {"vocab", json::object()}, {"merges", json::array()}})),
                         "dropout is not supported"));
    }

    void malformedComponents() {
        QVERIFY(contains(load_error(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}})),
                         "pre_tokenizer 'Split': regex '(unclosed' does not compile"));
        QVERIFY(contains(load_error(with("pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", 5}})),
                         "pre_tokenizer 'Sequence': field 'pretokenizers' must be an array"));
        QVERIFY(contains(load_error(with("normalizer", {{"kind", "NFC"}})), "normalizer has no string field 'type'"));
        QVERIFY(contains(load_error(with("model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", {"a b"}}})),
                         "merge 1 ('a' + 'b') uses a token missing from the vocabulary"));
        QVERIFY(contains(load_error(with("model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", {"a"}}})),
                         "merge 1 ('a') must be two tokens separated by one space"));
        QVERIFY(contains(load_error(with("model", {{"type", "BPE"}, {"vocab", {{"a", -4}}}, {"merges", json::array()}})),
                         "vocab entry 'a' must have an id between 0 and"));
        QVERIFY(contains(load_error(with("model", {{"type", "BPE"}, {"vocab", {{"a", 1ll << 40}}}, {"merges", json::array()}})),
                         "vocab entry 'a' must have an id between 0 and"));
        QVERIFY(contains(load_error(with("added_tokens", json::array({{{"id", "x"}}}))), "added_tokens"));
        QVERIFY(contains(load_error(with("post_processor", {{"type", "TemplateProcessing"},
                                                            {"single", json::array({{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}})},
                                                            {"special_tokens", json::object()}})),
                         "post_processor 'TemplateProcessing': special token '<s>' is not listed in 'special_tokens'"));
    }

    void brokenChatTemplateInConfig() {
        std::string error = load_error(minimal_tokenizer().dump(), json({{"chat_template", "line one\n{% for m in messages %}x"}}).dump());
        QVERIFY(contains(error, "tokenizer_config.json: chat template 2:"));
        QVERIFY(contains(error, "{% endfor %}"));
    }

    void hostileText() {
        auto tokenizer = mwb::tok::Tokenizer::from_json(minimal_tokenizer().dump(), "");
        QVERIFY(tokenizer.ok());
        auto invalid = tokenizer->encode(std::string("a\xC3(b"), false);
        QVERIFY(!invalid.ok());
        QVERIFY(contains(invalid.error().message, "not valid UTF-8"));
        QVERIFY(tokenizer->encode(std::string(100000, 'a'), false).ok());
        QVERIFY(tokenizer->encode(std::string("a\0b", 3), false).ok());
        // Unknown ids are skipped; out-of-range ids never read outside the vocabulary.
        QCOMPARE(tokenizer->decode(std::vector<int32_t>{-1, 2, 999999, 3}, true), std::string("ab"));
        mwb::tok::StreamingDetokenizer stream(*tokenizer, false);
        QCOMPARE(stream.push(-7) + stream.push(2) + stream.finish(), std::string("ab"));
    }

    // Every prefix of a real chat template either parses or fails with a positioned error.
    void truncatedTemplatesNeverCrash() {
        auto config = json::parse(read_text(std::string(MWB_TEST_DATA) + "/tokenizer/deepseek-v3/tokenizer_config.json"));
        const std::string source = config["chat_template"];
        const json messages = json::parse(R"([{"role": "user", "content": "hi"}])");
        for (size_t length = 0; length <= source.size(); length += 7) {
            auto parsed = mwb::tok::ChatTemplate::parse(source.substr(0, length));
            if (!parsed) {
                QVERIFY2(has_template_position(parsed.error().message), parsed.error().message.c_str());
                continue;
            }
            auto text = parsed->render(messages, true, {{"bos_token", "<s>"}}, mwb::tok::TemplateJson::object());
            QVERIFY(text.ok() || has_template_position(text.error().message));
        }
    }

    void deeplyNestedTemplate() {
        std::string nested = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
        auto parsed = mwb::tok::ChatTemplate::parse(nested);
        QVERIFY(!parsed.ok());
        QVERIFY(contains(parsed.error().message, "nested too deeply"));
        std::string ifs;
        for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
        QVERIFY(!mwb::tok::ChatTemplate::parse(ifs).ok());
    }

    // Chains built in loops rather than by recursion (200,000 terms of `+`, `~`, `and`, attributes, subscripts,
    // filters): refused at parse time instead of overflowing the stack when evaluated or destroyed.
    void longChainsAreRefused_data() {
        QTest::addColumn<QString>("unit");
        QTest::addColumn<QString>("prefix");
        QTest::newRow("+") << "+1" << "1";
        QTest::newRow("~") << "~'a'" << "'a'";
        QTest::newRow("and") << " and true" << "true";
        QTest::newRow(".x") << ".x" << "messages";
        QTest::newRow("[0]") << "[0]" << "messages";
        QTest::newRow("|string") << "|string" << "1";
        QTest::newRow("if else") << " if true else 1" << "1";
    }
    void longChainsAreRefused() {
        QFETCH(QString, unit);
        QFETCH(QString, prefix);
        std::string text = "{{ " + prefix.toStdString();
        for (int i = 0; i < 200000; ++i) text += unit.toStdString();
        text += " }}";
        auto parsed = mwb::tok::ChatTemplate::parse(text);
        QVERIFY(!parsed.ok());
        QVERIFY2(contains(parsed.error().message, "nested too deeply"), parsed.error().message.c_str());
        // A long but reasonable chain still works.
        auto fine = mwb::tok::ChatTemplate::parse("{{ 1" + std::string(100, '+') + "}}");
        QVERIFY(!fine.ok());  // a dangling operator is a syntax error, not a depth error
        std::string hundred = "{{ 0";
        for (int i = 0; i < 100; ++i) hundred += "+1";
        auto sum = mwb::tok::ChatTemplate::parse(hundred + " }}");
        QVERIFY(sum.ok());
        auto text100 = sum->render(json::array(), false, json::object(), json::object());
        QVERIFY(text100.ok());
        QCOMPARE(*text100, std::string("100"));
    }

    // Python's integers do not overflow; ours are 64-bit, so a result beyond int64 is an error (never undefined
    // behaviour or SIGFPE), and the exact results Python gives within range are kept.
    void integerArithmeticAtTheLimits_data() {
        QTest::addColumn<QString>("expression");
        QTest::addColumn<QString>("expected");  // empty: an overflow error
        const QString minimum = "(-9223372036854775807 - 1)";
        QTest::newRow("INT64_MIN // -1") << minimum + " // -1" << "";
        QTest::newRow("INT64_MIN % -1") << minimum + " % -1" << "0";
        QTest::newRow("-INT64_MIN") << "-" + minimum << "";
        QTest::newRow("max + 1") << "9223372036854775807 + 1" << "";
        QTest::newRow("min - 1") << minimum + " - 1" << "";
        QTest::newRow("square beyond") << "3037000500 * 3037000500" << "";
        QTest::newRow("2 ** 64") << "2 ** 64" << "";
        QTest::newRow("2 ** 62") << "2 ** 62" << "4611686018427387904";
        QTest::newRow("(-1) ** 65") << "(-1) ** 65" << "-1";
        QTest::newRow("-7 // 2") << "-7 // 2" << "-4";
        QTest::newRow("-7 % 2") << "-7 % 2" << "1";
        QTest::newRow("divisibleby(-1)") << "(" + minimum + " is divisibleby(-1))" << "True";
    }
    void integerArithmeticAtTheLimits() {
        QFETCH(QString, expression);
        QFETCH(QString, expected);
        auto parsed = mwb::tok::ChatTemplate::parse("{{ " + expression.toStdString() + " }}");
        QVERIFY2(parsed.ok(), parsed.ok() ? "" : parsed.error().message.c_str());
        auto text = parsed->render(json::array(), false, json::object(), json::object());
        if (expected.isEmpty()) {
            QVERIFY(!text.ok());
            QVERIFY2(contains(text.error().message, "integer overflow"), text.error().message.c_str());
        } else {
            QVERIFY2(text.ok(), text.ok() ? "" : text.error().message.c_str());
            QCOMPARE(QString::fromStdString(*text), expected);
        }
    }

    // A render's budget: each of these stops with an error in well under a second instead of running for minutes
    // or taking gigabytes.
    void runawayRendersStop_data() {
        QTest::addColumn<QString>("source");
        QTest::addColumn<QString>("mentions");
        QTest::newRow("exponential macro") << "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
                                           << "steps";
        QTest::newRow("nested long ranges") << "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}" << "steps";
        QTest::newRow("string doubling") << "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                                         << "MiB";
        QTest::newRow("string times") << "{{ 'abc' * 100000000 }}" << "MiB";
        QTest::newRow("output") << "{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}" << "MiB";
    }
    void runawayRendersStop() {
        QFETCH(QString, source);
        QFETCH(QString, mentions);
        auto parsed = mwb::tok::ChatTemplate::parse(source.toStdString());
        QVERIFY2(parsed.ok(), parsed.ok() ? "" : parsed.error().message.c_str());
        auto text = parsed->render(json::array(), false, json::object(), json::object());
        QVERIFY(!text.ok());
        QVERIFY2(contains(text.error().message, mentions.toStdString()), text.error().message.c_str());
    }

    void runawayMacroRecursion() {
        auto parsed = mwb::tok::ChatTemplate::parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
        QVERIFY(parsed.ok());
        auto text = parsed->render(json::array(), false, json::object(), json::object());
        QVERIFY(!text.ok());
        QVERIFY(contains(text.error().message, "nested too deeply"));
    }
};

QTEST_APPLESS_MAIN(TestTokenizerBadInput)
#include "test_tokenizer_bad_input.moc"
