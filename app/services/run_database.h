// The run history: one SQLite database (WAL, foreign keys, `PRAGMA user_version` schema with forward
// migrations) holding runs, their messages with token counts and timings, and per-message routing summaries.
// RunDatabase is synchronous and owns one connection: use it from a single thread (Storage runs it on its own).
#pragma once

#include <QDateTime>
#include <QList>
#include <QSqlDatabase>
#include <QString>
#include <QStringList>
#include <optional>

#include "app/services/chat_types.h"
#include "app/services/training_types.h"
#include "engine/core/result.h"

namespace mwb::app {

struct RunRecord {
    qint64 id = 0;
    QString kind;   // "chat" or "finetune"
    QString title;
    QString model;  // model folder path
    QDateTime created_at;
    QDateTime updated_at;
    QDateTime finished_at;  // invalid while the run is open
    QString params_json;    // sampling and other run parameters
    QString status;         // "open", "finished", "failed"
    int message_count = 0;  // of the conversation as shown (its current branch)
};

// Messages form a tree per run: editing a message or regenerating a reply adds a sibling, so the earlier
// continuation stays as an alternative branch. The run's head is the last message of the branch shown.
struct MessageRecord {
    qint64 id = 0;
    qint64 run_id = 0;
    // The message this one answers or follows. Unset when adding: after the run's head. 0: a first message.
    std::optional<qint64> parent_id;
    int position = 0;  // depth in the conversation, from 0 (set by the database)
    QString role;
    QString content;
    QDateTime created_at;
    // False while a reply is being written (it streams into the history): a reply still false when its chat is
    // reopened was interrupted by a quit or a crash.
    bool complete = true;
    bool has_stats = false;  // assistant replies carry generation statistics
    GenerationStats stats;
    RoutingSummary routing;
    QList<CitedSource> sources;  // the document passages an answer was given (stored by add_message)
    QStringList images;          // attached images, by the SHA-256 that names them in the ImageStore
    QList<qint64> siblings;  // read only: the alternatives at this point of the conversation, oldest first
};

struct RunFilter {
    QString text;   // matches the title or any message
    QString kind;   // empty: all
    QString model;  // empty: all
    QDate since;    // invalid: unbounded
    QDate until;
};

class RunDatabase {
public:
    static constexpr int kSchemaVersion = 7;

    // `connection_name` must be unique among live connections of the process.
    explicit RunDatabase(QString connection_name);
    ~RunDatabase();
    RunDatabase(const RunDatabase&) = delete;
    RunDatabase& operator=(const RunDatabase&) = delete;

    // Opens (creating when missing) and migrates the database to kSchemaVersion.
    Status open(const QString& path);
    // open(), after PRAGMA quick_check of an existing file: one that is not a database or is damaged is moved
    // aside (with its -wal and -shm) and a fresh history started. The value is then where the copy went (empty
    // when the file was sound), so the user can be told; nothing is ever deleted.
    Result<QString> open_checked(const QString& path);
    bool is_open() const;
    int schema_version() const;
    Result<QString> integrity_check() const;  // "ok" when the file is sound
    // The connection, for the stores that share this database (documents); same thread rule.
    QSqlDatabase connection() const;

    Result<qint64> create_run(const QString& kind, const QString& title, const QString& model, const QString& params_json);
    Status rename_run(qint64 run_id, const QString& title);
    Status set_run_params(qint64 run_id, const QString& params_json);
    Status finish_run(qint64 run_id, const QString& status);
    // Deletes the run with its messages; the value names the images that no message refers to any more, for the
    // ImageStore to delete.
    Result<QStringList> delete_run(qint64 run_id);
    Result<QList<RunRecord>> list_runs(const RunFilter& filter = {}) const;
    Result<RunRecord> run(qint64 run_id) const;
    Result<QStringList> models() const;

    // Adds a message with its statistics and routing summary in one transaction; it becomes the run's head.
    Result<qint64> add_message(const MessageRecord& message);
    // Rewrites a stored message's content, completeness, statistics and (when not empty) routing summary.
    Status update_message(const MessageRecord& message);
    // Shows the branch through `message_id`: the head becomes its latest descendant (the newest child at every
    // step), or the message itself when it has none.
    Status select_branch(qint64 run_id, qint64 message_id);
    // The conversation as shown: from the first message to the head, each with its siblings.
    Result<QList<MessageRecord>> messages(qint64 run_id) const;

    // The curve of a training run (kind "finetune").
    Status add_training_step(qint64 run_id, const TrainingStep& step);
    Result<QList<TrainingStep>> training_steps(qint64 run_id) const;

private:
    Status migrate();
    Status exec(const QString& sql);

    QString connection_name_;
};

// Routing summaries are stored as two little-endian BLOBs: the MoE layer indices (int32) and the counts
// (uint32, layers × experts, row-major).
QByteArray encode_routing_layers(const RoutingSummary& summary);
QByteArray encode_routing_counts(const RoutingSummary& summary);
Result<RoutingSummary> decode_routing(int experts, const QByteArray& layers, const QByteArray& counts);

}  // namespace mwb::app
