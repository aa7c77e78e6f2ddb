// The DeepSeek-V3 tokenizer against ids and text produced by Hugging Face transformers/tokenizers.
#include <QtTest>

#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/streaming_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

using mwb::tok::StreamingDetokenizer;
using mwb::tok::Tokenizer;

namespace {

const std::string kFixtureDir = std::string(MWB_TEST_DATA) + "/tokenizer/deepseek-v3";
const std::string kReplacement = "\xEF\xBF\xBD";

std::string read_text(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::ostringstream contents;
    contents << file.rdbuf();
    return contents.str();
}

std::vector<nlohmann::json> read_vectors() {
    std::vector<nlohmann::json> vectors;
    std::ifstream file(kFixtureDir + "/vectors.jsonl");
    std::string line;
    while (std::getline(file, line))
        if (!line.empty()) vectors.push_back(nlohmann::json::parse(line));
    return vectors;
}

QString show(const std::string& text) { return QString::fromStdString(nlohmann::json(text).dump()); }

}  // namespace

class TestTokenizerFixtures : public QObject {
    Q_OBJECT

private:
    std::optional<Tokenizer> tokenizer_;

private slots:
    void initTestCase() {
        auto loaded = Tokenizer::load(kFixtureDir);
        QVERIFY2(loaded.ok(), loaded.ok() ? "" : loaded.error().message.c_str());
        tokenizer_ = std::move(loaded.value());
    }

    void vectorsEncodeExactly() {
        auto vectors = read_vectors();
        QCOMPARE(vectors.size(), size_t(125));
        for (const auto& vector : vectors) {
            const std::string text = vector["text"];
            auto ids = tokenizer_->encode(text, false);
            QVERIFY2(ids.ok(), qPrintable(show(text)));
            QVERIFY2(ids.value() == vector["ids"].get<std::vector<int32_t>>(), qPrintable("ids of " + show(text)));
            auto with_special = tokenizer_->encode(text, true);
            QVERIFY(with_special.ok());
            QVERIFY2(with_special.value() == vector["ids_with_special"].get<std::vector<int32_t>>(),
                     qPrintable("ids_with_special of " + show(text)));
        }
    }

    void vectorsDecodeExactly() {
        for (const auto& vector : read_vectors()) {
            auto ids = vector["ids"].get<std::vector<int32_t>>();
            QCOMPARE(show(tokenizer_->decode(ids, false)), show(vector["decoded"].get<std::string>()));
        }
    }

    void streamingReproducesEveryString() {
        for (const auto& vector : read_vectors()) {
            auto ids = vector["ids"].get<std::vector<int32_t>>();
            StreamingDetokenizer stream(*tokenizer_, false);
            std::string streamed;
            for (int32_t id : ids) {
                std::string piece = stream.push(id);
                QVERIFY2(piece.find(kReplacement) == std::string::npos,
                         qPrintable("U+FFFD emitted mid-stream for " + show(vector["text"])));
                streamed += piece;
            }
            streamed += stream.finish();
            QCOMPARE(show(streamed), show(vector["decoded"].get<std::string>()));
        }
    }

    void streamingHoldsBackSplitCharacters() {
        // "😀" is four bytes that the byte-level vocabulary spells with more than one token.
        auto ids = tokenizer_->encode("😀", false);
        QVERIFY(ids.ok());
        QVERIFY(ids->size() > 1);
        StreamingDetokenizer stream(*tokenizer_, false);
        for (size_t i = 0; i + 1 < ids->size(); ++i) QCOMPARE(stream.push((*ids)[i]), std::string());
        QCOMPARE(stream.push(ids->back()), std::string("😀"));
        QCOMPARE(stream.finish(), std::string());
    }

    void streamingSkipsSpecialTokens() {
        auto bos = tokenizer_->token_to_id("<｜begin▁of▁sentence｜>");
        auto eos = tokenizer_->token_to_id("<｜end▁of▁sentence｜>");
        QVERIFY(bos && eos);
        StreamingDetokenizer stream(*tokenizer_, true);
        std::string text = stream.push(*bos);
        for (int32_t id : {19923, 2058}) text += stream.push(id);  // "Hello world" (vectors.jsonl)
        text += stream.push(*eos);
        text += stream.finish();
        QCOMPARE(text, std::string("Hello world"));
    }

    void chatCasesRenderAndEncodeExactly() {
        auto cases = nlohmann::ordered_json::parse(read_text(kFixtureDir + "/chat_template_cases.json"));
        QCOMPARE(cases.size(), size_t(6));
        QVERIFY(tokenizer_->has_chat_template());
        for (const auto& chat_case : cases) {
            auto text = tokenizer_->apply_chat_template_json(chat_case["messages"], chat_case["add_generation_prompt"]);
            QVERIFY2(text.ok(), text.ok() ? "" : text.error().message.c_str());
            QCOMPARE(show(text.value()), show(chat_case["text"].get<std::string>()));
            auto ids = tokenizer_->encode(text.value(), false);
            QVERIFY(ids.ok());
            QVERIFY2(ids.value() == chat_case["ids"].get<std::vector<int32_t>>(), qPrintable("ids of " + show(text.value())));
        }
    }

    void chatMessagesBuiltInCpp() {
        // The first case of chat_template_cases.json, built with ChatMessage.
        std::vector<mwb::tok::ChatMessage> messages(1);
        messages[0].role = "user";
        messages[0].content = "Hello!";
        auto text = tokenizer_->apply_chat_template(messages, true);
        QVERIFY(text.ok());
        QCOMPARE(show(*text), show("<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜>"));
    }

    void specialTokensFromConfig() {
        QCOMPARE(tokenizer_->bos_id(), std::optional<int32_t>(0));
        QCOMPARE(tokenizer_->eos_ids(), std::vector<int32_t>{1});
        QVERIFY(tokenizer_->is_special(0));
        QVERIFY(tokenizer_->is_special(1));
        QVERIFY(!tokenizer_->is_special(19923));
        QVERIFY(!tokenizer_->is_special(128814));  // <｜tool▁sep｜> is an added token but not special
        QCOMPARE(tokenizer_->vocab_size(), size_t(128815));
        QCOMPARE(tokenizer_->token_to_id("<｜User｜>"), std::optional<int32_t>(128803));
        QCOMPARE(tokenizer_->decode(std::vector<int32_t>{0, 19923, 2058, 1}, true), std::string("Hello world"));
    }
};

QTEST_APPLESS_MAIN(TestTokenizerFixtures)
#include "test_tokenizer_fixtures.moc"
