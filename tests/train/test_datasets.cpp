// Training data: every JSONL format rendered with the real DeepSeek-V3 chat template, labels on the assistant's
// tokens only (or all), truncation, pre-tokenized files, and every kind of bad line named by file, line and field.
#include <QtTest>

#include <cstdint>
#include <fstream>

#include "engine/io/safetensors.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/dataset.h"
#include "engine/train/lora_model.h"

using namespace mwb;
using namespace mwb::train;

namespace {

std::string write_lines(const QTemporaryDir& dir, const char* name, const std::vector<std::string>& lines) {
    const std::string path = dir.filePath(name).toStdString();
    std::ofstream file(path);
    for (const std::string& line : lines) file << line << "\n";
    return path;
}

}  // namespace

class DatasetTest : public QObject {
    Q_OBJECT

    std::optional<tok::Tokenizer> tokenizer_;
    QTemporaryDir dir_;

    // The text of a row's labelled tokens.
    std::string learnt(const TokenRow& row) {
        std::vector<int32_t> ids;
        for (size_t t = 0; t < row.labels.size(); ++t)
            if (row.labels[t] != kIgnoredLabel) ids.push_back(int32_t(row.labels[t]));
        return tokenizer_->decode(ids, false);
    }

private slots:
    void initTestCase() {
        auto loaded = tok::Tokenizer::load(MWB_TEST_DATA "/tokenizer/deepseek-v3");
        QVERIFY(loaded.ok());
        tokenizer_ = std::move(loaded.value());
    }

    void everyFormatLearnsTheAssistantOnly() {
        const std::string path = write_lines(dir_, "mixed.jsonl", {
            R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}]})",
            R"({"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}, {"from": "human", "value": "3+3?"}, {"from": "gpt", "value": "6"}]})",
            R"({"instruction": "Translate", "input": "chat", "output": "cat", "history": [["Hi", "Hello"]]})",
            R"({"text": "Plain text for pre-training."})",
            "",
        });
        auto dataset = load_dataset(path, &*tokenizer_, {});
        QVERIFY2(dataset.ok(), dataset.ok() ? "" : dataset.error().message.c_str());
        QCOMPARE(dataset->rows.size(), size_t(4));
        const std::string end = "<｜end▁of▁sentence｜>";
        QCOMPARE(learnt(dataset->rows[0]), "Paris" + end);
        QCOMPARE(learnt(dataset->rows[1]), "4" + end + "6" + end);  // both assistant turns
        QCOMPARE(learnt(dataset->rows[2]), "Hello" + end + "cat" + end);
        // The rendered conversation is the template's: the system prompt, then the turns.
        QCOMPARE(tokenizer_->decode(dataset->rows[0].ids, false),
                 "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Capital of France?<｜Assistant｜>Paris" + end);
        QCOMPARE(tokenizer_->decode(dataset->rows[2].ids, false).find("Translate\nchat") != std::string::npos, true);
        // Plain text learns every token (with the special tokens tokenizer.json adds: none for DeepSeek-V3, as the
        // fixture's ids_with_special show) and ends the document.
        QCOMPARE(learnt(dataset->rows[3]), "Plain text for pre-training." + end);
        int64_t labelled = 0, tokens = 0;
        for (const TokenRow& row : dataset->rows) {
            labelled += counted_labels(row.labels);
            tokens += int64_t(row.ids.size());
        }
        QCOMPARE(dataset->stats.rows, 4);
        QCOMPARE(dataset->stats.tokens, tokens);
        QCOMPARE(dataset->stats.label_tokens, labelled);

        DatasetOptions all;
        all.train_on_prompt = true;
        auto everything = load_dataset(path, &*tokenizer_, all);
        QVERIFY(everything.ok());
        QCOMPARE(counted_labels(everything->rows[0].labels), int64_t(everything->rows[0].ids.size()) - 1);
    }

    void longRowsAreTruncatedAndCounted() {
        const std::string path = write_lines(dir_, "long.jsonl", {R"({"text": "one two three four five six seven eight nine ten eleven twelve"})",
                                                                  R"({"text": "short"})"});
        DatasetOptions options;
        options.cutoff = 6;
        auto dataset = load_dataset(path, &*tokenizer_, options);
        QVERIFY(dataset.ok());
        QCOMPARE(dataset->stats.truncated_rows, 1);
        QCOMPARE(dataset->rows[0].ids.size(), size_t(6));
        QCOMPARE(dataset->rows[0].labels.size(), size_t(6));
    }

    void badLinesNameFileLineAndField() {
        const std::vector<std::pair<std::string, std::string>> cases = {
            {R"({"messages": [{"role": "user", "content": "hi"})", "not valid JSON"},
            {R"(["a list"])", "each line must be a JSON object"},
            {R"({"messages": []})", "field 'messages' must be a non-empty array"},
            {R"({"messages": [{"role": "user"}]})", "messages[0]: field 'content' is missing"},
            {R"({"messages": [{"role": "robot", "content": "x"}]})", "messages[0]: unknown role 'robot'"},
            {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0]: field 'content' must be a string"},
            {R"({"instruction": "do it"})", "field 'output' is missing"},
            {R"({"instruction": "a", "output": "b", "history": [["only one"]]})", "history[0] must be a [question, answer] pair"},
            {R"({"text": 42})", "field 'text' must be a string"},
            {R"({"prompt": "x", "completion": "y"})", "no field of a known format"},
            {R"({"messages": [{"role": "user", "content": "no answer"}]})", "no assistant message"},
        };
        std::vector<std::string> lines = {R"({"text": "a good line"})"};
        for (size_t i = 0; i < cases.size(); ++i) {
            const std::string path = write_lines(dir_, "bad.jsonl", {R"({"text": "fine"})", cases[i].first});
            auto dataset = load_dataset(path, &*tokenizer_, {});
            QVERIFY2(!dataset.ok(), cases[i].first.c_str());
            const std::string& message = dataset.error().message;
            QVERIFY2(message.find(path + ":2: ") == 0, message.c_str());
            QVERIFY2(message.find(cases[i].second) != std::string::npos, message.c_str());
            lines.push_back(cases[i].first);
        }
        // Skipped on request, and counted.
        DatasetOptions skipping;
        skipping.skip_bad_lines = true;
        auto dataset = load_dataset(write_lines(dir_, "skip.jsonl", lines), &*tokenizer_, skipping);
        QVERIFY(dataset.ok());
        QCOMPARE(dataset->rows.size(), size_t(1));
        QCOMPARE(dataset->stats.skipped_lines, int64_t(cases.size()));
        QCOMPARE(dataset->stats.bad_lines.size(), cases.size());
        QCOMPARE(dataset->stats.bad_lines.front().first, int64_t(2));
        QVERIFY(dataset->stats.bad_lines.front().second.find("not valid JSON") != std::string::npos);
    }

    void preTokenizedFilesAndTheirErrors() {
        const std::string path = dir_.filePath("rows.safetensors").toStdString();
        const std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6}, labels = {-100, 2, 3, -100, -100, 6};
        QVERIFY(write_safetensors(path, {tensor_i64("input_ids", {2, 3}, ids), tensor_i64("labels", {2, 3}, labels)}).ok());
        auto dataset = load_dataset(path, nullptr, {});
        QVERIFY(dataset.ok());
        QCOMPARE(dataset->rows[1].ids, (std::vector<int32_t>{4, 5, 6}));
        QCOMPARE(dataset->rows[1].labels, (std::vector<int64_t>{-100, -100, 6}));
        QCOMPARE(dataset->stats.label_tokens, 3);
        const std::string wrong = dir_.filePath("wrong.safetensors").toStdString();
        QVERIFY(write_safetensors(wrong, {tensor_i64("data", {2, 3}, ids), tensor_i64("labels", {3, 2}, labels)}).ok());
        auto refused = load_dataset(wrong, nullptr, {});
        QVERIFY(!refused.ok());
        QVERIFY(refused.error().message.find("must both be [rows, tokens]") != std::string::npos);
        auto no_tokenizer = load_dataset(write_lines(dir_, "t.jsonl", {R"({"text": "x"})"}), nullptr, {});
        QVERIFY(!no_tokenizer.ok() && no_tokenizer.error().message.find("tokenizer") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(DatasetTest)
#include "test_datasets.moc"
