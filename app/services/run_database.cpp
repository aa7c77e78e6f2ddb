#include "app/services/run_database.h"

#include "app/services/history_schema.h"
#include "app/services/sql_support.h"

#include <QDateTime>
#include <QFile>
#include <QFileInfo>
#include <QHash>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QtEndian>

namespace mwb::app {

namespace {

qint64 now_ms() { return QDateTime::currentMSecsSinceEpoch(); }

QDateTime from_ms(const QVariant& value) {
    return value.isNull() ? QDateTime() : QDateTime::fromMSecsSinceEpoch(value.toLongLong());
}

RunRecord read_run(const QSqlQuery& q) {
    RunRecord r;
    r.id = q.value(0).toLongLong();
    r.kind = q.value(1).toString();
    r.title = q.value(2).toString();
    r.model = q.value(3).toString();
    r.created_at = from_ms(q.value(4));
    r.updated_at = from_ms(q.value(5));
    r.finished_at = from_ms(q.value(6));
    r.params_json = q.value(7).toString();
    r.status = q.value(8).toString();
    r.message_count = q.value(9).toInt();
    return r;
}

// The message count is the head's depth + 1: the messages of the branch shown.
const char* const kRunColumns =
    "SELECT r.id, r.kind, r.title, r.model, r.created_at, r.updated_at, r.finished_at, r.params, r.status, "
    "COALESCE((SELECT m.position + 1 FROM messages m WHERE m.id = r.head_message_id), 0) FROM runs r ";

}  // namespace

RunDatabase::RunDatabase(QString connection_name) : connection_name_(std::move(connection_name)) {}

RunDatabase::~RunDatabase() {
    {
        QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
        if (db.isValid()) db.close();
    }
    if (QSqlDatabase::contains(connection_name_)) QSqlDatabase::removeDatabase(connection_name_);
}

Status RunDatabase::open(const QString& path) {
    QSqlDatabase db = QSqlDatabase::contains(connection_name_) ? QSqlDatabase::database(connection_name_, false)
                                                               : QSqlDatabase::addDatabase("QSQLITE", connection_name_);
    if (!db.isValid()) return make_error("the Qt SQLite driver (QSQLITE) is not available: install libqt6sql6-sqlite");
    db.setDatabaseName(path);
    if (!db.open()) return sql_error("cannot open the run history " + path, db.lastError());
    // WAL keeps readers and the writer apart; NORMAL sync in WAL mode loses nothing committed when the process
    // is killed (only a power cut can drop the last transactions).
    MWB_TRY(exec("PRAGMA journal_mode = WAL"));
    MWB_TRY(exec("PRAGMA synchronous = NORMAL"));
    MWB_TRY(exec("PRAGMA foreign_keys = ON"));
    MWB_TRY(exec("PRAGMA busy_timeout = 5000"));
    return migrate();
}

namespace {

// What PRAGMA quick_check says of an existing file, on a connection of its own. Only SQLite's own verdicts
// (SQLITE_CORRUPT 11, SQLITE_NOTADB 26, or problems listed) count as damage: a file that cannot be read for
// another reason (permissions, a lock) is left alone and reported by open().
bool is_damaged(const QString& path) {
    const QString name = QStringLiteral("mwb-quick-check-%1").arg(quintptr(&path));
    bool damaged = false;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", name);
        db.setDatabaseName(path);
        db.setConnectOptions("QSQLITE_OPEN_READONLY");
        if (db.open()) {
            QSqlQuery q(db);
            if (q.exec("PRAGMA quick_check")) {
                damaged = !q.next() || q.value(0).toString() != QLatin1String("ok");
            } else {
                const QString code = q.lastError().nativeErrorCode();
                damaged = code == QLatin1String("11") || code == QLatin1String("26");
            }
        }
        db.close();
    }
    QSqlDatabase::removeDatabase(name);
    return damaged;
}

}  // namespace

Result<QString> RunDatabase::open_checked(const QString& path) {
    QString copy;
    if (QFileInfo::exists(path) && is_damaged(path)) {
        copy = path + ".damaged-" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss");
        if (!QFile::rename(path, copy)) return make_error("the run history " + path.toStdString() + " is damaged and cannot be moved aside");
        for (const char* suffix : {"-wal", "-shm"})
            if (QFileInfo::exists(path + suffix)) QFile::rename(path + suffix, copy + suffix);
    }
    MWB_TRY(open(path));
    return copy;
}

bool RunDatabase::is_open() const {
    return QSqlDatabase::contains(connection_name_) && QSqlDatabase::database(connection_name_, false).isOpen();
}

QSqlDatabase RunDatabase::connection() const { return QSqlDatabase::database(connection_name_, false); }

int RunDatabase::schema_version() const {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    if (!q.exec("PRAGMA user_version") || !q.next()) return -1;
    return q.value(0).toInt();
}

Result<QString> RunDatabase::integrity_check() const {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    if (!q.exec("PRAGMA integrity_check") || !q.next()) return sql_error("integrity check", q.lastError());
    return q.value(0).toString();
}

Status RunDatabase::exec(const QString& sql) {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    if (!q.exec(sql)) return sql_error("SQL failed (" + sql.simplified().left(60) + ")", q.lastError());
    return Status::success();
}

Status RunDatabase::migrate() {
    const int version = schema_version();
    if (version < 0) return make_error("cannot read the schema version of the run history");
    if (version > kSchemaVersion)
        return make_error("the run history was written by a newer MoE Workbench (schema " + std::to_string(version) +
                          ", this version knows up to " + std::to_string(kSchemaVersion) +
                          "); update the app or choose another data directory in Settings");
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    for (int step = version; step < kSchemaVersion; ++step) {
        if (!db.transaction()) return sql_error("cannot start the schema migration", db.lastError());
        for (const QString& statement : sql_statements(kHistoryMigrations[step])) {
            if (Status status = exec(statement); !status) {
                db.rollback();
                return make_error("migrating the run history to schema " + std::to_string(step + 1) + " failed: " + status.error().message);
            }
        }
        if (Status status = exec(QStringLiteral("PRAGMA user_version = %1").arg(step + 1)); !status) {
            db.rollback();
            return status;
        }
        if (!db.commit()) return sql_error("cannot commit the schema migration", db.lastError());
    }
    return Status::success();
}

Result<qint64> RunDatabase::create_run(const QString& kind, const QString& title, const QString& model, const QString& params_json) {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare("INSERT INTO runs (kind, title, model, created_at, updated_at, params, status) VALUES (?, ?, ?, ?, ?, ?, 'open')");
    const qint64 now = now_ms();
    q.addBindValue(kind);
    q.addBindValue(title);
    q.addBindValue(model);
    q.addBindValue(now);
    q.addBindValue(now);
    q.addBindValue(params_json.isEmpty() ? QStringLiteral("{}") : params_json);
    if (!q.exec()) return sql_error("cannot create a run", q.lastError());
    return q.lastInsertId().toLongLong();
}

Status RunDatabase::rename_run(qint64 run_id, const QString& title) {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare("UPDATE runs SET title = ? WHERE id = ?");
    q.addBindValue(title);
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot rename the run", q.lastError());
    return Status::success();
}

Status RunDatabase::set_run_params(qint64 run_id, const QString& params_json) {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare("UPDATE runs SET params = ? WHERE id = ?");
    q.addBindValue(params_json);
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot store the run parameters", q.lastError());
    return Status::success();
}

Status RunDatabase::finish_run(qint64 run_id, const QString& status) {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare("UPDATE runs SET status = ?, finished_at = ?, updated_at = ? WHERE id = ?");
    const qint64 now = now_ms();
    q.addBindValue(status);
    q.addBindValue(now);
    q.addBindValue(now);
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot finish the run", q.lastError());
    return Status::success();
}

Result<QList<RunRecord>> RunDatabase::list_runs(const RunFilter& filter) const {
    QString sql = kRunColumns;
    QStringList where;
    QVariantList values;
    if (!filter.text.isEmpty()) {
        where << "(r.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m WHERE m.run_id = r.id AND m.content LIKE ? ESCAPE '\\'))";
        QString pattern = filter.text;
        pattern.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        values << "%" + pattern + "%" << "%" + pattern + "%";
    }
    if (!filter.kind.isEmpty()) where << "r.kind = ?", values << filter.kind;
    if (!filter.model.isEmpty()) where << "r.model = ?", values << filter.model;
    if (filter.since.isValid()) where << "r.created_at >= ?", values << filter.since.startOfDay().toMSecsSinceEpoch();
    if (filter.until.isValid()) where << "r.created_at < ?", values << filter.until.addDays(1).startOfDay().toMSecsSinceEpoch();
    if (!where.isEmpty()) sql += "WHERE " + where.join(" AND ") + " ";
    sql += "ORDER BY r.updated_at DESC, r.id DESC";

    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare(sql);
    for (const QVariant& v : values) q.addBindValue(v);
    if (!q.exec()) return sql_error("cannot list runs", q.lastError());
    QList<RunRecord> runs;
    while (q.next()) runs << read_run(q);
    return runs;
}

Result<RunRecord> RunDatabase::run(qint64 run_id) const {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare(QString(kRunColumns) + "WHERE r.id = ?");
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot read the run", q.lastError());
    if (!q.next()) return make_error("run " + std::to_string(run_id) + " does not exist (it may have been deleted)");
    return read_run(q);
}

Result<QStringList> RunDatabase::models() const {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    if (!q.exec("SELECT DISTINCT model FROM runs ORDER BY model")) return sql_error("cannot list models", q.lastError());
    QStringList models;
    while (q.next()) models << q.value(0).toString();
    return models;
}

namespace {

// A null QString binds as SQL NULL; an empty reply is empty text.
QString text_value(const QString& text) { return text.isNull() ? QStringLiteral("") : text; }

void bind_stats(QSqlQuery& q, const MessageRecord& m) {
    const QVariant null_int{QMetaType::fromType<int>()};
    const QVariant null_real{QMetaType::fromType<double>()};
    q.addBindValue(m.has_stats ? QVariant(m.stats.prompt_tokens) : null_int);
    q.addBindValue(m.has_stats ? QVariant(m.stats.generated_tokens) : null_int);
    q.addBindValue(m.has_stats ? QVariant(m.stats.time_to_first_token_s) : null_real);
    q.addBindValue(m.has_stats ? QVariant(m.stats.prefill_tokens_per_s) : null_real);
    q.addBindValue(m.has_stats ? QVariant(m.stats.decode_tokens_per_s) : null_real);
    q.addBindValue(m.has_stats ? QVariant(m.stats.finish_reason) : QVariant(QMetaType::fromType<QString>()));
}

Status store_routing(QSqlDatabase& db, qint64 message_id, const RoutingSummary& routing) {
    if (routing.empty()) return Status::success();
    QSqlQuery r(db);
    r.prepare("INSERT OR REPLACE INTO routing_summaries (message_id, experts, layers, counts) VALUES (?, ?, ?, ?)");
    r.addBindValue(message_id);
    r.addBindValue(routing.experts);
    r.addBindValue(encode_routing_layers(routing));
    r.addBindValue(encode_routing_counts(routing));
    if (!r.exec()) return sql_error("cannot store the routing summary", r.lastError());
    return Status::success();
}

Status store_sources(QSqlDatabase& db, qint64 message_id, const QList<CitedSource>& sources) {
    QSqlQuery q(db);
    q.prepare("INSERT INTO message_sources (message_id, number, document_id, path, document, page, char_start, char_end, text) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const CitedSource& s : sources) {
        q.addBindValue(message_id);
        q.addBindValue(s.number);
        // The document may have left the index since it was retrieved.
        q.addBindValue(s.document_id > 0 ? QVariant(s.document_id) : QVariant(QMetaType::fromType<qint64>()));
        q.addBindValue(s.path);
        q.addBindValue(s.document);
        q.addBindValue(s.page);
        q.addBindValue(s.char_start);
        q.addBindValue(s.char_end);
        q.addBindValue(s.text);
        if (!q.exec()) return sql_error("cannot store the sources of the message", q.lastError());
    }
    return Status::success();
}

Status store_images(QSqlDatabase& db, qint64 message_id, const QStringList& images) {
    QSqlQuery q(db);
    q.prepare("INSERT INTO message_images (message_id, position, sha256) VALUES (?, ?, ?)");
    for (qsizetype i = 0; i < images.size(); ++i) {
        q.addBindValue(message_id);
        q.addBindValue(int(i));
        q.addBindValue(images[i]);
        if (!q.exec()) return sql_error("cannot store the images of the message", q.lastError());
    }
    return Status::success();
}

// Images of the messages of a run, by message id, in order.
Result<QHash<qint64, QStringList>> read_images(QSqlDatabase db, qint64 run_id) {
    QSqlQuery q(db);
    q.prepare("SELECT i.message_id, i.sha256 FROM message_images i JOIN messages m ON m.id = i.message_id WHERE m.run_id = ? "
              "ORDER BY i.message_id, i.position");
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot read the images of the messages", q.lastError());
    QHash<qint64, QStringList> images;
    while (q.next()) images[q.value(0).toLongLong()] << q.value(1).toString();
    return images;
}

// Sources of the messages of a run, by message id.
Result<QHash<qint64, QList<CitedSource>>> read_sources(QSqlDatabase db, qint64 run_id) {
    QSqlQuery q(db);
    q.prepare("SELECT s.message_id, s.number, s.document_id, s.path, s.document, s.page, s.char_start, s.char_end, s.text "
              "FROM message_sources s JOIN messages m ON m.id = s.message_id WHERE m.run_id = ? ORDER BY s.message_id, s.number");
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot read the sources of the messages", q.lastError());
    QHash<qint64, QList<CitedSource>> sources;
    while (q.next()) {
        CitedSource s;
        s.number = q.value(1).toInt();
        s.document_id = q.value(2).toLongLong();
        s.path = q.value(3).toString();
        s.document = q.value(4).toString();
        s.page = q.value(5).toInt();
        s.char_start = q.value(6).toInt();
        s.char_end = q.value(7).toInt();
        s.text = q.value(8).toString();
        sources[q.value(0).toLongLong()] << s;
    }
    return sources;
}

// A query with one row and one column; null (or no row) gives std::nullopt.
Result<std::optional<qint64>> single_id(QSqlDatabase db, const QString& sql, const QVariantList& values) {
    QSqlQuery q(db);
    q.prepare(sql);
    for (const QVariant& v : values) q.addBindValue(v);
    if (!q.exec()) return sql_error("cannot read the conversation", q.lastError());
    if (!q.next() || q.value(0).isNull()) return std::optional<qint64>();
    return std::optional<qint64>(q.value(0).toLongLong());
}

}  // namespace

Result<QStringList> RunDatabase::delete_run(qint64 run_id) {
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    return in_transaction<QStringList>(db, "delete the run", [&]() -> Result<QStringList> {
        QSqlQuery images(db);
        images.prepare("SELECT DISTINCT i.sha256 FROM message_images i JOIN messages m ON m.id = i.message_id WHERE m.run_id = ?");
        images.addBindValue(run_id);
        if (!images.exec()) return sql_error("cannot read the images of the run", images.lastError());
        QStringList attached;
        while (images.next()) attached << images.value(0).toString();
        QSqlQuery q(db);
        q.prepare("DELETE FROM runs WHERE id = ?");  // messages and what hangs on them follow by ON DELETE CASCADE
        q.addBindValue(run_id);
        if (!q.exec()) return sql_error("cannot delete the run", q.lastError());
        QStringList unused;
        for (const QString& sha256 : attached) {
            auto still = single_id(db, "SELECT COUNT(*) FROM message_images WHERE sha256 = ?", {sha256});
            if (!still) return still.error();
            if (still->value_or(0) == 0) unused << sha256;
        }
        return unused;
    });
}

Result<qint64> RunDatabase::add_message(const MessageRecord& m) {
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    return in_transaction<qint64>(db, "store the message", [&]() -> Result<qint64> {
        std::optional<qint64> parent = m.parent_id;
        if (!parent) {
            auto head = single_id(db, "SELECT head_message_id FROM runs WHERE id = ?", {m.run_id});
            if (!head) return head.error();
            parent = head->value_or(0);
        }
        int position = 0;
        if (*parent != 0) {
            auto depth = single_id(db, "SELECT position FROM messages WHERE id = ? AND run_id = ?", {*parent, m.run_id});
            if (!depth) return depth.error();
            if (!*depth) return make_error("the message this one follows (" + std::to_string(*parent) + ") is not in run " + std::to_string(m.run_id));
            position = int(**depth) + 1;
        }
        QSqlQuery q(db);
        q.prepare("INSERT INTO messages (run_id, parent_id, position, role, content, complete, created_at, prompt_tokens, generated_tokens, "
                  "ttft_s, prefill_tokens_per_s, decode_tokens_per_s, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        q.addBindValue(m.run_id);
        q.addBindValue(*parent != 0 ? QVariant(*parent) : QVariant(QMetaType::fromType<qint64>()));
        q.addBindValue(position);
        q.addBindValue(m.role);
        q.addBindValue(text_value(m.content));
        q.addBindValue(m.complete ? 1 : 0);
        q.addBindValue(m.created_at.isValid() ? m.created_at.toMSecsSinceEpoch() : now_ms());
        bind_stats(q, m);
        if (!q.exec()) return sql_error("cannot store the message", q.lastError());
        const qint64 id = q.lastInsertId().toLongLong();
        MWB_TRY(store_routing(db, id, m.routing));
        MWB_TRY(store_sources(db, id, m.sources));
        MWB_TRY(store_images(db, id, m.images));
        QSqlQuery head(db);
        head.prepare("UPDATE runs SET head_message_id = ?, updated_at = ? WHERE id = ?");
        head.addBindValue(id);
        head.addBindValue(now_ms());
        head.addBindValue(m.run_id);
        if (!head.exec() || head.numRowsAffected() != 1) return sql_error("cannot update the run of the message", head.lastError());
        return id;
    });
}

Status RunDatabase::update_message(const MessageRecord& m) {
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    auto updated = in_transaction<qint64>(db, "update the message", [&]() -> Result<qint64> {
        QSqlQuery q(db);
        q.prepare("UPDATE messages SET content = ?, complete = ?, prompt_tokens = ?, generated_tokens = ?, ttft_s = ?, "
                  "prefill_tokens_per_s = ?, decode_tokens_per_s = ?, finish_reason = ? WHERE id = ?");
        q.addBindValue(text_value(m.content));
        q.addBindValue(m.complete ? 1 : 0);
        bind_stats(q, m);
        q.addBindValue(m.id);
        if (!q.exec()) return sql_error("cannot update the message", q.lastError());
        if (q.numRowsAffected() != 1) return make_error("message " + std::to_string(m.id) + " is no longer in the run history");
        MWB_TRY(store_routing(db, m.id, m.routing));
        QSqlQuery touch(db);
        touch.prepare("UPDATE runs SET updated_at = ? WHERE id = (SELECT run_id FROM messages WHERE id = ?)");
        touch.addBindValue(now_ms());
        touch.addBindValue(m.id);
        if (!touch.exec()) return sql_error("cannot update the run of the message", touch.lastError());
        return m.id;
    });
    if (!updated) return updated.error();
    return Status::success();
}

Status RunDatabase::select_branch(qint64 run_id, qint64 message_id) {
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    auto exists = single_id(db, "SELECT id FROM messages WHERE id = ? AND run_id = ?", {message_id, run_id});
    if (!exists) return exists.error();
    if (!*exists) return make_error("message " + std::to_string(message_id) + " is not in run " + std::to_string(run_id));
    qint64 leaf = message_id;
    for (;;) {
        auto child = single_id(db, "SELECT MAX(id) FROM messages WHERE parent_id = ?", {leaf});
        if (!child) return child.error();
        if (!*child) break;
        leaf = **child;
    }
    QSqlQuery q(db);
    q.prepare("UPDATE runs SET head_message_id = ? WHERE id = ?");
    q.addBindValue(leaf);
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot switch the branch", q.lastError());
    return Status::success();
}

Result<QList<MessageRecord>> RunDatabase::messages(qint64 run_id) const {
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    QSqlQuery q(db);
    q.prepare("SELECT m.id, m.run_id, m.parent_id, m.position, m.role, m.content, m.complete, m.created_at, m.prompt_tokens, "
              "m.generated_tokens, m.ttft_s, m.prefill_tokens_per_s, m.decode_tokens_per_s, m.finish_reason, s.experts, s.layers, s.counts "
              "FROM messages m LEFT JOIN routing_summaries s ON s.message_id = m.id WHERE m.run_id = ? ORDER BY m.id");
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot read messages", q.lastError());
    QHash<qint64, MessageRecord> by_id;
    QHash<qint64, QList<qint64>> children;  // by parent id, 0 for first messages; ascending ids
    qint64 newest = 0;
    while (q.next()) {
        MessageRecord m;
        m.id = q.value(0).toLongLong();
        m.run_id = q.value(1).toLongLong();
        m.parent_id = q.value(2).isNull() ? 0 : q.value(2).toLongLong();
        m.position = q.value(3).toInt();
        m.role = q.value(4).toString();
        m.content = q.value(5).toString();
        m.complete = q.value(6).toInt() != 0;
        m.created_at = from_ms(q.value(7));
        m.has_stats = !q.value(8).isNull();
        if (m.has_stats) {
            m.stats.prompt_tokens = q.value(8).toInt();
            m.stats.generated_tokens = q.value(9).toInt();
            m.stats.time_to_first_token_s = q.value(10).toDouble();
            m.stats.prefill_tokens_per_s = q.value(11).toDouble();
            m.stats.decode_tokens_per_s = q.value(12).toDouble();
            m.stats.finish_reason = q.value(13).toString();
        }
        if (!q.value(14).isNull()) {
            auto routing = decode_routing(q.value(14).toInt(), q.value(15).toByteArray(), q.value(16).toByteArray());
            if (!routing) return routing.error();
            m.routing = std::move(routing.value());
        }
        children[*m.parent_id] << m.id;
        newest = m.id;
        by_id.insert(m.id, std::move(m));
    }
    auto head = single_id(db, "SELECT head_message_id FROM runs WHERE id = ?", {run_id});
    if (!head) return head.error();
    qint64 at = head->value_or(0);
    if (!by_id.contains(at)) at = newest;  // a history written before heads were kept
    auto sources = read_sources(db, run_id);
    if (!sources) return sources.error();
    auto images = read_images(db, run_id);
    if (!images) return images.error();
    QList<MessageRecord> path;
    // Each message is taken once, so even a damaged file with a cycle of parents ends the walk.
    while (at != 0 && by_id.contains(at)) {
        MessageRecord m = by_id.take(at);
        m.siblings = children.value(*m.parent_id);
        m.sources = sources->value(m.id);
        m.images = images->value(m.id);
        at = *m.parent_id;
        path.prepend(std::move(m));
    }
    return path;
}

Status RunDatabase::add_training_step(qint64 run_id, const TrainingStep& step) {
    QSqlDatabase db = QSqlDatabase::database(connection_name_, false);
    QSqlQuery q(db);
    // A resumed run repeats no step, but a step written before a crash and written again after is replaced.
    q.prepare("INSERT OR REPLACE INTO training_steps (run_id, step, loss, learning_rate, grad_norm, tokens, seconds, validation_loss) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    q.addBindValue(run_id);
    q.addBindValue(step.step);
    q.addBindValue(step.loss);
    q.addBindValue(step.learning_rate);
    q.addBindValue(step.grad_norm);
    q.addBindValue(step.tokens);
    q.addBindValue(step.seconds);
    q.addBindValue(step.validation_loss >= 0 ? QVariant(step.validation_loss) : QVariant(QMetaType::fromType<double>()));
    if (!q.exec()) return sql_error("cannot store the training step", q.lastError());
    QSqlQuery touch(db);
    touch.prepare("UPDATE runs SET updated_at = ? WHERE id = ?");
    touch.addBindValue(now_ms());
    touch.addBindValue(run_id);
    if (!touch.exec()) return sql_error("cannot update the run", touch.lastError());
    return Status::success();
}

Result<QList<TrainingStep>> RunDatabase::training_steps(qint64 run_id) const {
    QSqlQuery q(QSqlDatabase::database(connection_name_, false));
    q.prepare("SELECT step, loss, learning_rate, grad_norm, tokens, seconds, validation_loss FROM training_steps WHERE run_id = ? ORDER BY step");
    q.addBindValue(run_id);
    if (!q.exec()) return sql_error("cannot read the training curve", q.lastError());
    QList<TrainingStep> steps;
    while (q.next()) {
        TrainingStep s;
        s.step = q.value(0).toLongLong();
        s.loss = q.value(1).toDouble();
        s.learning_rate = q.value(2).toDouble();
        s.grad_norm = q.value(3).toDouble();
        s.tokens = q.value(4).toLongLong();
        s.seconds = q.value(5).toDouble();
        s.validation_loss = q.value(6).isNull() ? -1 : q.value(6).toDouble();
        steps << s;
    }
    return steps;
}

QByteArray encode_routing_layers(const RoutingSummary& summary) {
    QByteArray bytes(summary.layers.size() * 4, Qt::Uninitialized);
    for (qsizetype i = 0; i < summary.layers.size(); ++i) qToLittleEndian<qint32>(summary.layers[i], bytes.data() + 4 * i);
    return bytes;
}

QByteArray encode_routing_counts(const RoutingSummary& summary) {
    QByteArray bytes(summary.layers.size() * summary.experts * 4, Qt::Uninitialized);
    char* out = bytes.data();
    for (const QVector<int>& row : summary.counts)
        for (int e = 0; e < summary.experts; ++e, out += 4) qToLittleEndian<quint32>(quint32(e < row.size() ? row[e] : 0), out);
    return bytes;
}

Result<RoutingSummary> decode_routing(int experts, const QByteArray& layers, const QByteArray& counts) {
    if (experts < 0 || layers.size() % 4 != 0 || counts.size() != layers.size() * qsizetype(experts))
        return make_error("a routing summary in the run history is malformed (sizes do not match)");
    RoutingSummary summary;
    summary.experts = experts;
    const qsizetype layer_count = layers.size() / 4;
    for (qsizetype i = 0; i < layer_count; ++i) {
        summary.layers << qFromLittleEndian<qint32>(layers.constData() + 4 * i);
        QVector<int> row(experts);
        for (int e = 0; e < experts; ++e) row[e] = int(qFromLittleEndian<quint32>(counts.constData() + 4 * (i * experts + e)));
        summary.counts << row;
    }
    return summary;
}

}  // namespace mwb::app
