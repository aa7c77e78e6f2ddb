// EngineWorker on its own thread with the demo model: streamed text in order and equal to what the engine and
// tokenizer produce directly for the same prompt and seed; stop mid-stream; errors as signals.
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <cstdint>

#include "app/services/engine_worker.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/generation.h"
#include "engine/tokenizer/streaming_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "test_support.h"

using namespace mwb::app;

namespace {

const QList<ChatMessage> kConversation = {{"system", "You are a terse assistant."}, {"user", "Name three prime numbers."}};

SamplingSettings test_sampling(int max_new_tokens) {
    SamplingSettings s;
    s.temperature = 0.8;
    s.top_p = 0.95;
    s.top_k = 50;
    s.repetition_penalty = 1.1;
    s.max_new_tokens = max_new_tokens;
    s.seed = 1234;
    return s;
}

struct Reference {
    std::vector<int32_t> tokens;
    QString text;
    int prompt_tokens = 0;
};

// The reply computed without the app: the chat template, encode, generate and decode of the engine itself.
// The prompt ids of a conversation, built here from the template and the tokenizer: the chat template with the
// generation prompt, encoded without special tokens, then the continuation's tokens.
std::vector<int32_t> reference_prompt(const mwb::tok::Tokenizer& tokenizer, const QList<ChatMessage>& conversation,
                                      const QString& continuation = {}) {
    std::vector<mwb::tok::ChatMessage> chat;
    for (const ChatMessage& m : conversation) chat.push_back({m.role.toStdString(), m.content.toStdString(), {}, {}, mwb::tok::TemplateJson::object()});
    auto rendered = tokenizer.apply_chat_template(chat, true);
    if (!rendered) qFatal("template: %s", rendered.error().message.c_str());
    auto prompt = tokenizer.encode(*rendered + continuation.toStdString(), false);
    if (!prompt) qFatal("encode: %s", prompt.error().message.c_str());
    if (!continuation.isEmpty()) {
        // Encoded on its own, as a continuation is: the template's text and the reply's do not merge.
        auto head = tokenizer.encode(*rendered, false);
        auto tail = tokenizer.encode(continuation.toStdString(), false);
        prompt = *head;
        prompt->insert(prompt->end(), tail->begin(), tail->end());
    }
    return *prompt;
}

Reference reference_reply(const QString& model, const QList<ChatMessage>& conversation, const SamplingSettings& s, int64_t context,
                          const QString& continuation = {}) {
    auto tokenizer = mwb::tok::Tokenizer::load(model.toStdString());
    if (!tokenizer) qFatal("tokenizer: %s", tokenizer.error().message.c_str());
    const std::vector<int32_t> prompt = reference_prompt(*tokenizer, conversation, continuation);
    auto graph = mwb::load_model_graph(model.toStdString());
    if (!graph) qFatal("model: %s", graph.error().message.c_str());
    auto backend = mwb::make_cpu_backend(std::make_shared<const mwb::ModelGraph>(std::move(graph.value())));
    if (!backend->reserve_cache(1, context).ok()) qFatal("cache");
    mwb::GenerationRequest request;
    request.prompt = prompt;
    request.sampling = {s.temperature, s.top_k, s.top_p, s.min_p, s.repetition_penalty, s.seed};
    request.max_new_tokens = s.max_new_tokens;
    request.stop_tokens = tokenizer->eos_ids();
    auto result = mwb::generate(*backend, request);
    if (!result) qFatal("generate: %s", result.error().message.c_str());
    return {result->tokens, QString::fromStdString(tokenizer->decode(result->tokens, true)), int(prompt.size())};
}

}  // namespace

class EngineWorkerTest : public QObject {
    Q_OBJECT

    QTemporaryDir data_;
    QString model_;

private slots:
    void initTestCase() {
        register_service_metatypes();
        model_ = data_.filePath("demo-model");
        EngineHost host;
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        testing::QueuedSpy progress(host.worker(), &EngineWorker::loadProgress);
        const DemoModelRecipe recipe = testing::small_demo_recipe();
        host.loadDemo(model_, recipe.config, recipe.seed, {});
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 120000);
        const auto info = loaded.first().first().value<LoadedModelInfo>();
        QVERIFY(info.is_demo);
        QCOMPARE(info.architecture, QStringLiteral("deepseek_v3"));
        QCOMPARE(info.context_length, 2048);  // the model's own, under the cap
        QVERIFY(info.has_generation_config);
        QCOMPARE(info.default_sampling.temperature, 0.6);  // from the demo's generation_config.json
        QCOMPARE(info.default_sampling.max_new_tokens, 256);
        QVERIFY(progress.size() >= 3);
        double previous = -1;
        for (const QVariantList& p : progress) {
            QVERIFY(p.first().toDouble() >= previous);
            previous = p.first().toDouble();
        }
        QCOMPARE(previous, 1.0);
    }

    void streamsTheSameTextAsTheEngine() {
        const SamplingSettings sampling = test_sampling(24);
        const Reference reference = reference_reply(model_, kConversation, sampling, 512);
        QVERIFY(!reference.text.isEmpty());

        EngineHost host;
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        host.load(model_, {512, 0, false, {}});
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 60000);
        testing::QueuedSpy started(host.worker(), &EngineWorker::generationStarted);
        testing::QueuedSpy finished(host.worker(), &EngineWorker::generationFinished);
        QStringList pieces;
        connect(host.worker(), &EngineWorker::tokenText, this, [&pieces](quint64, const QString& piece) { pieces << piece; });
        const quint64 id = host.generate(kConversation, sampling);
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() >= 1, 60000);

        QCOMPARE(started.size(), 1);
        QCOMPARE(started.first().at(0).toULongLong(), id);
        QCOMPARE(started.first().at(1).toInt(), reference.prompt_tokens);
        const QList<QVariant> result = finished.first();
        QCOMPARE(result.at(0).toULongLong(), id);
        const QString text = result.at(1).toString();
        const auto stats = result.at(2).value<GenerationStats>();
        const auto routing = result.at(3).value<RoutingSummary>();
        QCOMPARE(text, reference.text);

        // The command-line companion on the same model, conversation and seed prints the same reply.
        QProcess cli;
        cli.start(MWB_CLI, {"generate", model_, "--chat", "--system", kConversation[0].content, "--prompt", kConversation[1].content,
                            "--temperature", QString::number(sampling.temperature), "--top-p", QString::number(sampling.top_p),
                            "--top-k", QString::number(sampling.top_k), "--repetition-penalty", QString::number(sampling.repetition_penalty),
                            "--seed", QString::number(sampling.seed), "--max-new", QString::number(sampling.max_new_tokens)});
        QVERIFY(cli.waitForFinished(120000));
        QVERIFY2(cli.exitCode() == 0, cli.readAllStandardError().constData());
        const QString printed = QString::fromUtf8(cli.readAllStandardOutput());
        QVERIFY(printed.endsWith('\n'));
        QCOMPARE(printed.chopped(1), text);
        QVERIFY(pieces.size() > 1);
        QCOMPARE(pieces.join(QString()), text);  // streamed in order, nothing lost or repeated
        QCOMPARE(stats.prompt_tokens, reference.prompt_tokens);
        QCOMPARE(stats.generated_tokens, int(reference.tokens.size()));
        QVERIFY(stats.time_to_first_token_s > 0);
        QVERIFY(stats.finish_reason == "length" || stats.finish_reason == "stop");

        // Expert load: every token (prompt and reply but the last, which is never fed back) in each MoE layer
        // went to top-k experts. The demo has 1 dense layer, then MoE layers with 16 experts, top-4.
        QCOMPARE(routing.experts, 16);
        QCOMPARE(routing.layers, (QVector<int>{1}));
        int routed = 0;
        for (int count : routing.counts.first()) routed += count;
        QCOMPARE(routed, 4 * (stats.prompt_tokens + stats.generated_tokens - 1));
    }

    void stopEndsTheReplyAtTheCurrentToken() {
        EngineHost host;
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        host.load(model_, {512, 0, false, {}});
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 60000);
        const SamplingSettings sampling = test_sampling(400);
        const Reference reference = reference_reply(model_, kConversation, sampling, 512);

        testing::QueuedSpy finished(host.worker(), &EngineWorker::generationFinished);
        QString streamed_before_stop;
        quint64 id = 0;
        int pieces = 0;
        // Runs on the engine thread, inside the token callback: the stop lands while a token is being handed out.
        connect(host.worker(), &EngineWorker::tokenText, host.worker(), [&](quint64 request, const QString& piece) {
            if (++pieces > 3) return;
            streamed_before_stop += piece;
            if (pieces == 3) host.worker()->requestStop(request);
        }, Qt::DirectConnection);
        id = host.generate(kConversation, sampling);
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() >= 1, 60000);
        const auto stats = finished.first().at(2).value<GenerationStats>();
        const QString text = finished.first().at(1).toString();
        QCOMPARE(finished.first().at(0).toULongLong(), id);
        QCOMPARE(stats.finish_reason, QStringLiteral("cancelled"));
        QVERIFY(stats.generated_tokens < 400);
        // Nothing after the token during which stop was pressed: the reply is the streamed text (plus any
        // character the detokenizer still held), and a prefix of the full reply for the same seed.
        QVERIFY(text.startsWith(streamed_before_stop));
        QVERIFY(reference.text.startsWith(text));
        // The token during which the third piece was streamed, found by replaying the reference tokens through a
        // streaming detokenizer of its own: the reply ends exactly there.
        auto tokenizer = mwb::tok::Tokenizer::load(model_.toStdString());
        mwb::tok::StreamingDetokenizer replay(*tokenizer, true);
        int token_of_third_piece = 0, replayed_pieces = 0;
        while (replayed_pieces < 3 && token_of_third_piece < int(reference.tokens.size()))
            if (!replay.push(reference.tokens[size_t(token_of_third_piece++)]).empty()) ++replayed_pieces;
        QCOMPARE(replayed_pieces, 3);
        QCOMPARE(stats.generated_tokens, token_of_third_piece);

        // A stop of a request that is still queued cancels it before it starts.
        testing::QueuedSpy later(host.worker(), &EngineWorker::generationFinished);
        const quint64 queued = host.generate(kConversation, test_sampling(50));
        host.stop(queued);
        QTRY_VERIFY_WITH_TIMEOUT(later.size() >= 1, 60000);
        QCOMPARE(later.first().at(2).value<GenerationStats>().generated_tokens, 0);
        QCOMPARE(later.first().at(2).value<GenerationStats>().finish_reason, QStringLiteral("cancelled"));
    }

    void loadErrorsArriveAsSignals() {
        EngineHost host;
        testing::QueuedSpy failed(host.worker(), &EngineWorker::loadFailed);
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        host.load(data_.filePath("no-such-model"), {});
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 1, 10000);
        QVERIFY(failed.first().at(1).toString().contains("does not exist"));

        // A folder whose config.json names an architecture the engine does not know.
        QTemporaryDir broken;
        QFile config(broken.filePath("config.json"));
        QVERIFY(config.open(QIODevice::WriteOnly));
        config.write(R"({"model_type": "mamba", "vocab_size": 10})");
        config.close();
        host.load(broken.path(), {});
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 2, 10000);
        QVERIFY(failed.at(1).at(1).toString().contains("mamba"));
        QCOMPARE(loaded.size(), 0);

        // A model whose tokenizer_config.json holds a chat template list with a non-string name: the tokenizer
        // used to throw out of the worker and take the app down; now the load fails with a message.
        QTemporaryDir hostile;
        for (const QString& name : QDir(model_).entryList(QDir::Files)) QVERIFY(QFile::copy(QDir(model_).filePath(name), hostile.filePath(name)));
        QFile::remove(hostile.filePath("tokenizer_config.json"));
        QFile tokenizer_config(hostile.filePath("tokenizer_config.json"));
        QVERIFY(tokenizer_config.open(QIODevice::WriteOnly));
        tokenizer_config.write(R"({"chat_template": [{"name": 5, "template": "x"}]})");
        tokenizer_config.close();
        host.load(hostile.path(), {});
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 3, 20000);
        QVERIFY2(failed.at(2).at(1).toString().contains("tokenizer"), qPrintable(failed.at(2).at(1).toString()));
        QCOMPARE(loaded.size(), 0);

        testing::QueuedSpy generation_failed(host.worker(), &EngineWorker::generationFailed);
        host.generate(kConversation, test_sampling(4));
        QTRY_VERIFY_WITH_TIMEOUT(generation_failed.size() >= 1, 10000);
        QVERIFY(generation_failed.first().at(1).toString().contains("No model is loaded"));
    }

    // The three overflow policies on a 64-token context with a 4-token reply budget (60 tokens for the prompt).
    void conversationLongerThanTheContextFollowsThePolicy() {
        EngineHost host;
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        host.load(model_, {64, 0, false, {}});
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 60000);
        auto tokenizer = mwb::tok::Tokenizer::load(model_.toStdString());
        QVERIFY(tokenizer.ok());
        testing::QueuedSpy counted(host.worker(), &EngineWorker::tokensCounted);
        testing::QueuedSpy started(host.worker(), &EngineWorker::generationStarted);
        testing::QueuedSpy failed(host.worker(), &EngineWorker::generationFailed);
        testing::QueuedSpy finished(host.worker(), &EngineWorker::generationFinished);

        const QList<ChatMessage> long_chat = {{"user", QString("prime numbers ").repeated(100)}};
        const int long_tokens = int(reference_prompt(*tokenizer, long_chat).size());
        QVERIFY(long_tokens > 64);
        host.countTokens(long_chat);
        QTRY_VERIFY_WITH_TIMEOUT(counted.size() >= 1, 10000);
        QCOMPARE(counted.first().at(1).toInt(), long_tokens);
        QCOMPARE(counted.first().at(2).toLongLong(), 64);

        // Refuse: nothing starts; the message gives both numbers.
        host.generate(long_chat, test_sampling(4), ContextOverflow::Refuse);
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 1, 10000);
        const QString refusal = failed.at(0).at(1).toString();
        QVERIFY2(refusal.contains(QStringLiteral("takes %1 tokens").arg(long_tokens)) && refusal.contains("context holds 64"), qPrintable(refusal));
        QCOMPARE(started.size(), 0);

        // Drop the oldest turns: the system prompt and the last message stay.
        const QList<ChatMessage> history = {{"system", "Be brief."},
                                            {"user", QString("tell me about primes ").repeated(20)},
                                            {"assistant", "Primes have two divisors."},
                                            {"user", "And 7?"}};
        const QList<ChatMessage> kept = {history[0], history[3]};
        const int kept_tokens = int(reference_prompt(*tokenizer, kept).size());
        QVERIFY(kept_tokens <= 60 && int(reference_prompt(*tokenizer, history).size()) > 60);
        host.generate(history, test_sampling(4), ContextOverflow::DropOldestTurns);
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() >= 1, 30000);
        QCOMPARE(started.size(), 1);
        QCOMPARE(started.at(0).at(1).toInt(), kept_tokens);
        QVERIFY2(started.at(0).at(2).toString().contains("Left out the 2 oldest messages"), qPrintable(started.at(0).at(2).toString()));
        // A last message that alone is too long cannot be helped by dropping turns.
        host.generate(long_chat, test_sampling(4), ContextOverflow::DropOldestTurns);
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 2, 10000);
        QVERIFY(failed.at(1).at(1).toString().contains("Even the last message alone"));

        // Truncate the middle: exactly the 60 tokens the prompt may have, and the note says how many were cut.
        host.generate(long_chat, test_sampling(4), ContextOverflow::TruncateMiddle);
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() >= 2, 30000);
        QCOMPARE(started.size(), 2);
        QCOMPARE(started.at(1).at(1).toInt(), 60);
        QVERIFY2(started.at(1).at(2).toString().contains(QStringLiteral("Left out %1 tokens from the middle").arg(long_tokens - 60)),
                 qPrintable(started.at(1).at(2).toString()));
        const auto stats = finished.at(1).at(2).value<GenerationStats>();
        QCOMPARE(stats.prompt_tokens, 60);
        QVERIFY(stats.generated_tokens >= 1 && stats.generated_tokens <= 4);
    }

    // Continue: the prompt is the conversation then the interrupted reply's text, and what streams is the same as
    // the engine generates from that prompt.
    void continuationGoesOnFromTheInterruptedText() {
        EngineHost host;
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        host.load(model_, {512, 0, false, {}});
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 60000);
        const QString partial = "Two, three and";
        const SamplingSettings sampling = test_sampling(12);
        const Reference reference = reference_reply(model_, kConversation, sampling, 512, partial);
        auto tokenizer = mwb::tok::Tokenizer::load(model_.toStdString());
        QCOMPARE(reference.prompt_tokens, int(reference_prompt(*tokenizer, kConversation).size() +
                                             tokenizer->encode(partial.toStdString(), false)->size()));

        testing::QueuedSpy started(host.worker(), &EngineWorker::generationStarted);
        testing::QueuedSpy finished(host.worker(), &EngineWorker::generationFinished);
        host.generate(kConversation, sampling, ContextOverflow::Refuse, partial);
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() >= 1, 60000);
        QCOMPARE(started.first().at(1).toInt(), reference.prompt_tokens);
        QCOMPARE(finished.first().at(1).toString(), reference.text);
    }

    // A model folder without a tokenizer loads with the tokenizer of a folder the user chose.
    void tokenizerFromAnotherFolder() {
        QTemporaryDir bare;
        for (const QString& name : QDir(model_).entryList(QDir::Files))
            if (!name.startsWith("tokenizer")) QVERIFY(QFile::copy(QDir(model_).filePath(name), bare.filePath(name)));
        EngineHost host;
        testing::QueuedSpy failed(host.worker(), &EngineWorker::loadFailed);
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        host.load(bare.path(), {512, 0, false, {}});
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 1, 30000);
        QVERIFY2(failed.first().at(1).toString().contains("choose its folder on the Models page"), qPrintable(failed.first().at(1).toString()));
        host.load(bare.path(), {512, 0, false, model_});
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 30000);
        QCOMPARE(loaded.first().first().value<LoadedModelInfo>().path, bare.path());
        testing::QueuedSpy finished(host.worker(), &EngineWorker::generationFinished);
        host.generate(kConversation, test_sampling(4));
        QTRY_VERIFY_WITH_TIMEOUT(finished.size() >= 1, 30000);
        QCOMPARE(finished.first().at(2).value<GenerationStats>().prompt_tokens, reference_reply(model_, kConversation, test_sampling(4), 512).prompt_tokens);
    }

    void cancelledLoadKeepsNothingHalfLoaded() {
        EngineHost host;
        testing::QueuedSpy cancelled(host.worker(), &EngineWorker::loadCancelled);
        testing::QueuedSpy loaded(host.worker(), &EngineWorker::modelLoaded);
        // Cancel from the first progress report, on the engine thread: the load stops at its next step.
        connect(host.worker(), &EngineWorker::loadProgress, host.worker(), [&host] { host.cancelLoad(); }, Qt::DirectConnection);
        host.load(model_, {});
        QTRY_VERIFY_WITH_TIMEOUT(cancelled.size() >= 1, 60000);
        QCOMPARE(loaded.size(), 0);
        testing::QueuedSpy generation_failed(host.worker(), &EngineWorker::generationFailed);
        host.generate(kConversation, test_sampling(4));
        QTRY_VERIFY_WITH_TIMEOUT(generation_failed.size() >= 1, 10000);
    }
};

QTEST_GUILESS_MAIN(EngineWorkerTest)
#include "engine_worker_test.moc"
