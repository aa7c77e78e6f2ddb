// The engine on its own thread. EngineWorker owns the model graph, the backend and the tokenizer and runs
// every engine call; results, streamed text and progress go back through queued signals. EngineHost owns the
// thread and is what the UI holds: its methods only post work or flip atomic flags, so they never block.
#pragma once

#include <QJsonObject>
#include <QObject>
#include <QThread>
#include <atomic>
#include <memory>

#include "app/services/chat_types.h"
#include "app/services/inspector_feed.h"
#include "engine/model/blocks/low_rank.h"

namespace mwb {
class Backend;
struct ModelGraph;
namespace tok {
class Tokenizer;
}
}  // namespace mwb

namespace mwb::app {

class VisionInput;

struct LoadOptions {
    qint64 context_length = 0;  // 0: the model's own, capped at kDefaultContextCap
    int threads = 0;            // 0: all cores
    bool cuda = false;
    QString tokenizer_directory;  // empty: the model folder's own tokenizer
    static constexpr qint64 kDefaultContextCap = 8192;
};

class EngineWorker : public QObject {
    Q_OBJECT
public:
    // `inspector`, when given, sees every token and routing decision of every generation (thread-safe).
    explicit EngineWorker(InspectorFeed* inspector = nullptr, QObject* parent = nullptr);
    ~EngineWorker() override;

    // Thread-safe: stops the generation with this id, and any earlier one still running or queued, before its
    // next token.
    void requestStop(quint64 request_id);
    // Thread-safe: a load in progress stops at its next step. A later load clears it.
    void requestCancelLoad();
    void clearCancelLoad();

public slots:
    void loadModel(const QString& directory, qint64 context_length, int threads, bool cuda, const QString& tokenizer_directory);
    // Creates the demo model from the recipe when it is not there yet, then loads it.
    void loadDemoModel(const QString& directory, const QJsonObject& config, quint64 seed, qint64 context_length, int threads);
    void unloadModel();
    void generate(const mwb::app::ChatRequest& request);
    // Prompt tokens the messages take with the chat template and the generation prompt.
    void countTokens(quint64 request_id, const QList<mwb::app::ChatMessage>& messages);
    // Re-runs the forward pass of a conversation message for the Inspector: the prompt of `messages` (then
    // `reply`, the text of the reply being inspected), with routing and the attention of `attention_layer`
    // captured. `origin` names the message for the Inspector.
    void inspect(quint64 request_id, const QList<mwb::app::ChatMessage>& messages, const QString& reply, qint64 attention_layer,
                 const QString& origin);
    // Applies a PEFT LoRA adapter (unmerged) to every later reply and inspection; an empty directory removes it.
    void setAdapter(const QString& directory);
    // The same prompt answered by the base model and with the adapter, both greedy, for a side-by-side look.
    void compareAdapter(quint64 request_id, const QList<mwb::app::ChatMessage>& messages, const QString& adapter_directory, int max_new_tokens);

signals:
    void loadStarted(QString directory);
    void loadProgress(double fraction, QString stage);
    void modelLoaded(mwb::app::LoadedModelInfo info);
    void loadFailed(QString directory, QString message);
    void loadCancelled(QString directory);
    void modelUnloaded();

    // `context_note` says what the overflow policy left out of the prompt; empty when it all fit.
    void generationStarted(quint64 request_id, int prompt_tokens, QString context_note);
    void tokenText(quint64 request_id, QString text);  // complete characters, in order
    void generationFinished(quint64 request_id, QString text, mwb::app::GenerationStats stats, mwb::app::RoutingSummary routing);
    void generationFailed(quint64 request_id, QString message);
    void tokensCounted(quint64 request_id, int tokens, qint64 context_length);
    void inspectionFinished(quint64 request_id, int tokens);
    void adapterChanged(QString directory);  // empty: none
    void adapterFailed(QString directory, QString message);
    void comparisonFinished(quint64 request_id, QString base_reply, QString adapter_reply);
    void comparisonFailed(quint64 request_id, QString message);
    void inspectionFailed(quint64 request_id, QString message);

private:
    bool load_cancelled() const { return cancel_load_.load(); }
    // Runs one request of the GUI. The engine reports errors as values; anything it throws all the same (a bug,
    // memory running out) ends that request with `on_error(message)` instead of taking the desktop app down.
    template <class Body, class OnError>
    void guarded(Body body, OnError on_error);
    void load_demo_model(const QString& directory, const QJsonObject& config, quint64 seed, qint64 context_length, int threads);
    void generate_reply(const ChatRequest& request);
    // A greedy reply to `prompt` through the backend, with `adapter` applied when not null.
    Result<std::string> greedy_reply(const std::vector<int32_t>& prompt, int max_new_tokens, const LowRankDeltas* adapter);
    void inspect_message(quint64 request_id, const QList<ChatMessage>& messages, const QString& reply, qint64 attention_layer,
                         const QString& origin);
    void finish_load(const QString& directory, const QString& tokenizer_directory, qint64 context_length, int threads, bool cuda,
                     double progress_start);

    std::shared_ptr<const ModelGraph> graph_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<tok::Tokenizer> tokenizer_;
    std::unique_ptr<VisionInput> vision_;  // a DeepSeek-VL model's vision tower; null for text models
    LowRankDeltas adapter_;  // applied to every request while not empty
    LoadedModelInfo info_;
    InspectorFeed* inspector_;

    std::atomic<bool> cancel_load_{false};
    std::atomic<bool> cancel_generation_{false};
    std::atomic<quint64> stop_up_to_id_{0};  // requests with ids up to this one are stopped
    std::atomic<quint64> running_request_id_{0};
};

class EngineHost : public QObject {
    Q_OBJECT
public:
    explicit EngineHost(QObject* parent = nullptr);
    // Stops a generation in flight and waits for the engine thread to end (at quit).
    ~EngineHost() override;

    EngineWorker* worker() const { return worker_; }
    InspectorFeed* inspector() { return &inspector_; }

    void load(const QString& directory, const LoadOptions& options);
    void loadDemo(const QString& directory, const QJsonObject& config, quint64 seed, const LoadOptions& options);
    void cancelLoad();
    void unload();
    // Returns the request id that the worker's signals carry.
    quint64 generate(QList<ChatMessage> messages, const SamplingSettings& sampling,
                     ContextOverflow overflow = ContextOverflow::Refuse, const QString& continuation = {});
    void stop(quint64 request_id);
    quint64 countTokens(const QList<ChatMessage>& messages);
    quint64 inspect(const QList<ChatMessage>& messages, const QString& reply, qint64 attention_layer, const QString& origin);
    void setAdapter(const QString& directory);
    quint64 compareAdapter(const QList<ChatMessage>& messages, const QString& adapter_directory, int max_new_tokens);

private:
    InspectorFeed inspector_;
    QThread thread_;
    EngineWorker* worker_ = nullptr;
    quint64 next_request_id_ = 1;
};

void register_service_metatypes();

}  // namespace mwb::app
