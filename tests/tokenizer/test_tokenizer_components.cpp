// Each tokenizer.json component against hand-written expectations (Hugging Face tokenizers' documented
// behaviour), and small inline tokenizers for the BPE model, added tokens and post-processors.
#include <QtTest>

#include <cstdint>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/decoders.h"
#include "engine/tokenizer/normalizers.h"
#include "engine/tokenizer/pre_tokenizers.h"
#include "engine/tokenizer/tokenizer.h"

using nlohmann::json;
using Strings = std::vector<std::string>;
using Ids = std::vector<int32_t>;

namespace {

Strings pre_tokenize(const json& spec, const std::string& text, bool at_input_start = true) {
    auto pre_tokenizer = mwb::tok::make_pre_tokenizer(spec);
    if (!pre_tokenizer.ok()) qFatal("%s", pre_tokenizer.error().message.c_str());
    std::vector<mwb::tok::PreToken> pieces{{text, at_input_start}};
    (*pre_tokenizer)->pre_tokenize(pieces);
    Strings texts;
    for (const auto& piece : pieces) texts.push_back(piece.text);
    return texts;
}

json split(const json& pattern, const char* behavior, bool invert = false) {
    return {{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
}

std::string normalize(const json& spec, const std::string& text) {
    auto normalizer = mwb::tok::make_normalizer(spec);
    if (!normalizer.ok()) qFatal("%s", normalizer.error().message.c_str());
    auto result = (*normalizer)->normalize(text);
    if (!result.ok()) qFatal("%s", result.error().message.c_str());
    return result.value();
}

std::string decode(const json& spec, Strings tokens) {
    auto decoder = mwb::tok::make_decoder(spec);
    if (!decoder.ok()) qFatal("%s", decoder.error().message.c_str());
    (*decoder)->decode_chain(tokens);
    std::string text;
    for (const auto& token : tokens) text += token;
    return text;
}

// A tokenizer whose vocabulary is the given tokens, numbered in order.
mwb::tok::Tokenizer make_tokenizer(const Strings& vocab, const json& merges, const json& model_options = json::object(),
                                   const json& added_tokens = json::array(), const json& components = json::object()) {
    json model = {{"type", "BPE"}, {"vocab", json::object()}, {"merges", merges}};
    for (size_t i = 0; i < vocab.size(); ++i) model["vocab"][vocab[i]] = i;
    for (auto it = model_options.begin(); it != model_options.end(); ++it) model[it.key()] = it.value();
    json root = {{"version", "1.0"}, {"model", model}, {"added_tokens", added_tokens}};
    for (auto it = components.begin(); it != components.end(); ++it) root[it.key()] = it.value();
    auto tokenizer = mwb::tok::Tokenizer::from_json(root.dump(), "");
    if (!tokenizer.ok()) qFatal("%s", tokenizer.error().message.c_str());
    return tokenizer.value();
}

Ids encode(const mwb::tok::Tokenizer& tokenizer, const std::string& text, bool add_special = false) {
    auto ids = tokenizer.encode(text, add_special);
    if (!ids.ok()) qFatal("%s", ids.error().message.c_str());
    return ids.value();
}

json added(int id, const char* content, const json& flags = json::object()) {
    json token = {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                  {"normalized", false}, {"special", true}};
    for (auto it = flags.begin(); it != flags.end(); ++it) token[it.key()] = it.value();
    return token;
}

const Strings kLetters = {"a", "b", "c", "h", "i", "x", " ", "<unk>"};  // ids 0..7

}  // namespace

class TestTokenizerComponents : public QObject {
    Q_OBJECT

private slots:
    // The SplitDelimiterBehavior examples of the Hugging Face documentation: "the-final--countdown" on "-".
    void splitBehaviors() {
        const std::string text = "the-final--countdown";
        const json dash = {{"String", "-"}};
        QCOMPARE(pre_tokenize(split(dash, "Removed"), text), (Strings{"the", "final", "countdown"}));
        QCOMPARE(pre_tokenize(split(dash, "Isolated"), text), (Strings{"the", "-", "final", "-", "-", "countdown"}));
        QCOMPARE(pre_tokenize(split(dash, "MergedWithPrevious"), text), (Strings{"the-", "final-", "-", "countdown"}));
        QCOMPARE(pre_tokenize(split(dash, "MergedWithNext"), text), (Strings{"the", "-final", "-", "-countdown"}));
        QCOMPARE(pre_tokenize(split(dash, "Contiguous"), text), (Strings{"the", "-", "final", "--", "countdown"}));
    }

    void splitInvert() {
        // Inverted, the pattern names what is kept: the letters survive, the digits are removed.
        const json letters = {{"Regex", "[a-z]+"}};
        QCOMPARE(pre_tokenize(split(letters, "Removed", true), "ab12cd3"), (Strings{"ab", "cd"}));
        QCOMPARE(pre_tokenize(split(letters, "Removed", false), "ab12cd3"), (Strings{"12", "3"}));
        // Inverted MergedWithNext: each non-letter run joins the letters after it.
        QCOMPARE(pre_tokenize(split(letters, "MergedWithNext", true), "ab12cd3"), (Strings{"ab", "12cd", "3"}));
    }

    void splitRegexWithUnicodeProperties() {
        const json numbers = {{"Regex", "\\p{N}{1,3}"}};
        QCOMPARE(pre_tokenize(split(numbers, "Isolated"), "a12345b"), (Strings{"a", "123", "45", "b"}));
        const json words = {{"Regex", "(?i:'s|'t)|\\p{L}+|\\s+(?!\\S)|\\s"}};
        QCOMPARE(pre_tokenize(split(words, "Isolated"), "IT'S  Über"), (Strings{"IT", "'S", " ", " ", "Über"}));
    }

    void digits() {
        const json individual = {{"type", "Digits"}, {"individual_digits", true}};
        const json contiguous = {{"type", "Digits"}, {"individual_digits", false}};
        QCOMPARE(pre_tokenize(individual, "Call 123 please"), (Strings{"Call ", "1", "2", "3", " please"}));
        QCOMPARE(pre_tokenize(contiguous, "Call 123 please"), (Strings{"Call ", "123", " please"}));
        QCOMPARE(pre_tokenize(contiguous, "x٣٤y"), (Strings{"x", "٣٤", "y"}));  // Arabic-Indic digits are numeric
    }

    void metaspace() {
        const json always = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}};
        QCOMPARE(pre_tokenize(always, "Hey friend!"), (Strings{"▁Hey", "▁friend!"}));
        QCOMPARE(pre_tokenize(always, "Hey  friend"), (Strings{"▁Hey", "▁", "▁friend"}));
        const json first = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}};
        QCOMPARE(pre_tokenize(first, "Hey friend", true), (Strings{"▁Hey", "▁friend"}));
        QCOMPARE(pre_tokenize(first, "Hey friend", false), (Strings{"Hey", "▁friend"}));
        const json never_unsplit = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "never"}, {"split", false}};
        QCOMPARE(pre_tokenize(never_unsplit, "Hey friend"), (Strings{"Hey▁friend"}));
        const json legacy = {{"type", "Metaspace"}, {"replacement", "▁"}, {"add_prefix_space", true}};
        QCOMPARE(pre_tokenize(legacy, "a b"), (Strings{"▁a", "▁b"}));
    }

    void byteLevel() {
        const json plain = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
        QCOMPARE(pre_tokenize(plain, "Hello my friend"), (Strings{"Hello", "Ġmy", "Ġfriend"}));
        // \s+(?!\S) leaves the last space to the word after it.
        QCOMPARE(pre_tokenize(plain, "a  b"), (Strings{"a", "Ġ", "Ġb"}));
        QCOMPARE(pre_tokenize(plain, "it's"), (Strings{"it", "'s"}));
        QCOMPARE(pre_tokenize(plain, "é\n"), (Strings{"Ã©", "Ċ"}));
        QCOMPARE(pre_tokenize(plain, "中"), (Strings{"ä¸Ń"}));  // E4 B8 AD
        const json prefixed = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
        QCOMPARE(pre_tokenize(prefixed, "Hello my"), (Strings{"ĠHello", "Ġmy"}));
        const json no_regex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
        QCOMPARE(pre_tokenize(no_regex, "Hello my"), (Strings{"HelloĠmy"}));
    }

    void sequenceOfPreTokenizers() {
        const json sequence = {{"type", "Sequence"},
                               {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", false}},
                                                              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
        QCOMPARE(pre_tokenize(sequence, "ab 12"), (Strings{"abĠ", "12"}));
    }

    void normalizers() {
        QCOMPARE(normalize({{"type", "NFC"}}, "e\xCC\x81"), std::string("é"));
        QCOMPARE(normalize({{"type", "NFD"}}, "é"), std::string("e\xCC\x81"));
        QCOMPARE(normalize({{"type", "NFKC"}}, "ﬁ ＦＵＬＬ ²"), std::string("fi FULL 2"));
        QCOMPARE(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}, "a b c"), std::string("a▁b▁c"));
        QCOMPARE(normalize({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}, "a   b  c"), std::string("a b c"));
        QCOMPARE(normalize({{"type", "Prepend"}, {"prepend", "▁"}}, "hi"), std::string("▁hi"));
        QCOMPARE(normalize({{"type", "Prepend"}, {"prepend", "▁"}}, ""), std::string());
        QCOMPARE(normalize({{"type", "Lowercase"}}, "ÄBC"), std::string("äbc"));
        QCOMPARE(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, "  x  "), std::string("x  "));
        const json llama2 = {{"type", "Sequence"},
                             {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                                                          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}};
        QCOMPARE(normalize(llama2, "Hey friend"), std::string("▁Hey▁friend"));
    }

    void decoders() {
        QCOMPARE(decode({{"type", "ByteLevel"}}, {"Hello", "Ġworld"}), std::string("Hello world"));
        QCOMPARE(decode({{"type", "ByteLevel"}}, {"ä¸", "Ń"}), std::string("中"));
        QCOMPARE(decode({{"type", "ByteLevel"}}, {"ä¸"}), std::string("\xEF\xBF\xBD"));  // incomplete character
        QCOMPARE(decode({{"type", "ByteLevel"}}, {"<｜User｜>", "Hi"}), std::string("<｜User｜>Hi"));
        QCOMPARE(decode({{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}}, {"▁Hello", "▁world"}),
                 std::string(" Hello world"));
        QCOMPARE(decode({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 1}}, {"  a  "}), std::string(" a "));
        QCOMPARE(decode({{"type", "ByteFallback"}}, {"a", "<0xE4>", "<0xB8>", "<0xAD>", "b"}), std::string("a中b"));
        QCOMPARE(decode({{"type", "ByteFallback"}}, {"<0xE4>", "a"}), std::string("\xEF\xBF\xBD" "a"));
        QCOMPARE(decode({{"type", "Fuse"}}, {"a", "b"}), std::string("ab"));
        QCOMPARE(decode({{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}}, {"▁Hey", "▁friend"}),
                 std::string("Hey friend"));
        // The Llama-2 decoder chain.
        const json llama2 = {{"type", "Sequence"},
                             {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                                       {{"type", "ByteFallback"}},
                                                       {{"type", "Fuse"}},
                                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
        QCOMPARE(decode(llama2, {"▁Hello", "<0xE4>", "<0xB8>", "<0xAD>", "▁world"}), std::string("Hello中 world"));
    }

    void bpeMergesInBothSpellingsFollowRank() {
        const Strings vocab = {"a", "b", "c", "ab", "bc", "abc"};
        // "a b" first: abc -> ab c -> abc.
        QCOMPARE(encode(make_tokenizer(vocab, json::array({"a b", json::array({"ab", "c"})})), "abc"), (Ids{5}));
        // "b c" ranks first: a bc, and no merge joins a + bc.
        QCOMPARE(encode(make_tokenizer(vocab, json::array({json::array({"b", "c"}), "a b"})), "abc"), (Ids{0, 4}));
        QCOMPARE(encode(make_tokenizer(vocab, json::array({"a b"})), "cabab"), (Ids{2, 3, 3}));
    }

    void bpeIgnoreMerges() {
        const Strings vocab = {"b", "c", "bc"};
        QCOMPARE(encode(make_tokenizer(vocab, json::array()), "bc"), (Ids{0, 1}));
        QCOMPARE(encode(make_tokenizer(vocab, json::array(), {{"ignore_merges", true}}), "bc"), (Ids{2}));
    }

    void bpeUnknownCharacters() {
        QCOMPARE(encode(make_tokenizer(kLetters, json::array(), {{"unk_token", "<unk>"}}), "ayyb"), (Ids{0, 7, 7, 1}));
        QCOMPARE(encode(make_tokenizer(kLetters, json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", true}}), "ayyb"),
                 (Ids{0, 7, 1}));
        // Without an unk token, unknown characters are dropped, as in Hugging Face tokenizers.
        QCOMPARE(encode(make_tokenizer(kLetters, json::array()), "ayb"), (Ids{0, 1}));
        // byte_fallback spells them with <0xXX> tokens.
        const Strings with_bytes = {"a", "<0xC3>", "<0xA9>"};
        QCOMPARE(encode(make_tokenizer(with_bytes, json::array(), {{"byte_fallback", true}}), "aé"), (Ids{0, 1, 2}));
    }

    void bpeContinuingSubwordPrefix() {
        const Strings vocab = {"a", "##b", "ab"};
        auto tokenizer = make_tokenizer(vocab, json::array({"a ##b"}), {{"continuing_subword_prefix", "##"}});
        QCOMPARE(encode(tokenizer, "ab"), (Ids{2}));
    }

    void addedTokensSplitBeforePreTokenization() {
        auto tokenizer = make_tokenizer(kLetters, json::array(), json::object(),
                                        json::array({added(10, "<mask>", {{"lstrip", true}}), added(11, "<r>", {{"rstrip", true}}),
                                                     added(12, "<|a|>"), added(13, "<|a|>b"),
                                                     added(14, "ab", {{"single_word", true}, {"special", false}})}));
        QCOMPARE(encode(tokenizer, "hi <mask>x"), (Ids{3, 4, 10, 5}));   // lstrip swallows the space before
        QCOMPARE(encode(tokenizer, "hi<r>  x"), (Ids{3, 4, 11, 5}));     // rstrip swallows the spaces after
        QCOMPARE(encode(tokenizer, "x<|a|>bc"), (Ids{5, 13, 2}));        // leftmost-longest
        QCOMPARE(encode(tokenizer, "<|a|>c"), (Ids{12, 2}));
        QCOMPARE(encode(tokenizer, "xab ab"), (Ids{5, 0, 1, 6, 14}));    // single_word: not inside "xab"
        // Without a decoder the tokens are joined with spaces.
        QCOMPARE(tokenizer.decode(Ids{3, 10, 14}, true), std::string("h ab"));
        QCOMPARE(tokenizer.decode(Ids{3, 10, 14}, false), std::string("h <mask> ab"));
        QVERIFY(tokenizer.is_special(10));
        QVERIFY(!tokenizer.is_special(14));
        QCOMPARE(tokenizer.vocab_size(), size_t(15));
    }

    void normalizedAddedTokensMatchAfterNormalization() {
        const json lowercase = {{"normalizer", {{"type", "Lowercase"}}}};
        auto tokenizer = make_tokenizer(kLetters, json::array(), json::object(),
                                        json::array({added(20, "AB", {{"normalized", false}}), added(21, "Cx", {{"normalized", true}})}),
                                        lowercase);
        QCOMPARE(encode(tokenizer, "ABab"), (Ids{20, 0, 1}));  // raw match, then lower-cased letters
        QCOMPARE(encode(tokenizer, "CX"), (Ids{21}));          // "CX" -> "cx" matches "Cx" normalized
    }

    void postProcessors() {
        const json bos_template = {{"type", "TemplateProcessing"},
                                   {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                                           {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
                                   {"pair", json::array()},
                                   {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {30}}, {"tokens", {"<s>"}}}},
                                                       {"</s>", {{"id", "</s>"}, {"ids", {31}}, {"tokens", {"</s>"}}}}}}};
        const json sequence = {{"type", "Sequence"},
                               {"processors", json::array({{{"type", "ByteLevel"}, {"trim_offsets", false}}, bos_template})}};
        auto tokenizer = make_tokenizer(kLetters, json::array(), json::object(), json::array({added(30, "<s>"), added(31, "</s>")}),
                                        {{"post_processor", sequence}});
        QCOMPARE(encode(tokenizer, "ab", true), (Ids{30, 0, 1, 31}));
        QCOMPARE(encode(tokenizer, "ab", false), (Ids{0, 1}));
        QCOMPARE(encode(tokenizer, "", true), (Ids{30, 31}));
    }

    void specialTokensFromConfig() {
        json root = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}},
                     {"added_tokens", json::array({added(1, "<bos>"), added(2, "<eos>")})}};
        json config = {{"bos_token", {{"content", "<bos>"}, {"__type", "AddedToken"}}}, {"eos_token", "<eos>"}};
        auto tokenizer = mwb::tok::Tokenizer::from_json(root.dump(), config.dump());
        QVERIFY(tokenizer.ok());
        QCOMPARE(tokenizer->bos_id(), std::optional<int32_t>(1));
        QCOMPARE(tokenizer->eos_ids(), std::vector<int32_t>{2});
        QVERIFY(!tokenizer->has_chat_template());
    }
};

QTEST_APPLESS_MAIN(TestTokenizerComponents)
#include "test_tokenizer_components.moc"
