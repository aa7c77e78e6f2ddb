// One conversation's place in the run history, written from the GUI thread through Storage. The run is created
// with the first message; messages attach where they belong in the conversation's tree (an edit or a
// regeneration adds a sibling, so the earlier branch stays); a reply is written while it streams, in batches,
// so that a crash loses at most the last fraction of a second; branches are switched in the history.
#pragma once

#include <QObject>
#include <QTimer>
#include <atomic>
#include <functional>
#include <memory>

#include "app/services/image_store.h"
#include "app/services/storage.h"

namespace mwb::app {

class ChatHistory : public QObject {
    Q_OBJECT
public:
    // A stored row's id as the storage thread learns it: 0 until the row is written (and if writing failed).
    // Jobs run in order, so a job posted after the one that writes it reads the final value.
    using MessageId = std::shared_ptr<std::atomic<qint64>>;
    static constexpr int kStreamIntervalMs = 250;

    explicit ChatHistory(Storage& storage, QObject* parent = nullptr);
    // Writes a reply still streaming as interrupted.
    ~ChatHistory() override;

    // A new conversation: nothing is stored until create_run().
    void reset();
    // A conversation read from the history; `system_message` is 0 when it has none.
    void adopt(qint64 run_id, qint64 system_message);
    bool has_run() const { return bool(run_); }
    qint64 run_id() const { return run_ ? run_->load() : 0; }  // 0 until the storage thread has created it
    // Creates the run, with the system prompt (when not empty) as its first message.
    void create_run(const QString& title, const QString& model, const QString& params_json, const QString& system_prompt);
    void set_params(const QString& params_json);

    // Adds `message` after `parent` (null: after the system message, when there is one). `image_files` are
    // copied into `images` on the storage thread and stored with the message by their hashes.
    MessageId add(MessageRecord message, const MessageId& parent, const QStringList& image_files = {},
                  const ImageStore& images = ImageStore({}));
    // A reply in progress: its whole text so far, written within kStreamIntervalMs.
    void stream(const MessageId& reply, const QString& content);
    // Writes the reply's final state now (complete, or interrupted with `complete` false).
    void finish(const MessageId& reply, MessageRecord record);

    // The conversation as the history shows it, handed to `done` on `context`'s thread.
    void read(QObject* context, std::function<void(QList<MessageRecord>)> done);
    // Shows the alternative `step` places from `message` (and its latest continuation), then read()s.
    void switch_alternative(const MessageId& message, int step, QObject* context, std::function<void(QList<MessageRecord>)> done);

signals:
    void runCreated(qint64 run_id);

private:
    void write_stream();

    Storage& storage_;
    std::shared_ptr<std::atomic<qint64>> run_;
    MessageId system_message_;
    QTimer stream_timer_;
    MessageId streaming_;
    QString streaming_text_;
};

}  // namespace mwb::app
