// The run history: schema migrations from every released version, round trips, filters, cascades, the
// asynchronous Storage front, and a writer process killed mid-write.
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QProcess>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>
#include <cstdio>

#include "app/services/image_store.h"
#include "app/services/run_database.h"
#include "app/services/storage.h"
#include "test_support.h"

using namespace mwb::app;
using mwb::Status;

namespace {

// The schema as versions 1 and 2 of the app created it, written out here independently of the migrations.
const char* const kVersion1Schema[] = {
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, title TEXT NOT NULL, model TEXT NOT NULL, "
    "created_at INTEGER NOT NULL, finished_at INTEGER, params TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL DEFAULT 'open')",
    "CREATE TABLE messages (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, "
    "position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, created_at INTEGER NOT NULL)",
};
const char* const kVersion2Additions[] = {
    "ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER",
    "ALTER TABLE messages ADD COLUMN generated_tokens INTEGER",
    "ALTER TABLE messages ADD COLUMN ttft_s REAL",
    "ALTER TABLE messages ADD COLUMN prefill_tokens_per_s REAL",
    "ALTER TABLE messages ADD COLUMN decode_tokens_per_s REAL",
    "ALTER TABLE messages ADD COLUMN finish_reason TEXT",
    "CREATE TABLE routing_summaries (message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE, "
    "experts INTEGER NOT NULL, layers BLOB NOT NULL, counts BLOB NOT NULL)",
};

const char* const kVersion3Additions[] = {
    "ALTER TABLE runs ADD COLUMN updated_at INTEGER",
    "CREATE INDEX messages_by_run ON messages(run_id, position)",
    "CREATE INDEX runs_by_updated ON runs(updated_at)",
};

// Runs `statements` on a raw connection to `path` and sets user_version.
void write_raw(const QString& path, const QStringList& statements, int user_version) {
    {
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "raw");
        db.setDatabaseName(path);
        QVERIFY(db.open());
        QSqlQuery q(db);
        for (const QString& s : statements) QVERIFY2(q.exec(s), qPrintable(s));
        QVERIFY(q.exec(QStringLiteral("PRAGMA user_version = %1").arg(user_version)));
        db.close();
    }
    QSqlDatabase::removeDatabase("raw");
}

int count_rows(const QString& path, const QString& table) {
    int count = -1;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "count");
        db.setDatabaseName(path);
        if (db.open()) {
            QSqlQuery q(db);
            if (q.exec("SELECT COUNT(*) FROM " + table) && q.next()) count = q.value(0).toInt();
        }
        db.close();
    }
    QSqlDatabase::removeDatabase("count");
    return count;
}

RoutingSummary sample_routing() {
    RoutingSummary r;
    r.experts = 4;
    r.layers = {1, 3};
    r.counts = {{5, 0, 2, 9}, {1, 1, 0, 14}};
    return r;
}

// Child process: writes runs of three messages in a loop, printing the number of each committed run.
int run_crash_writer(const char* path) {
    RunDatabase db("writer");
    if (Status status = db.open(path); !status) {
        std::fprintf(stderr, "%s\n", status.error().message.c_str());
        return 2;
    }
    for (int i = 0;; ++i) {
        auto run = db.create_run("chat", QStringLiteral("run %1").arg(i), "/models/demo", "{}");
        if (!run) return 3;
        for (int j = 0; j < 3; ++j) {
            MessageRecord m;
            m.run_id = *run;
            m.position = j;
            m.role = j % 2 ? "assistant" : "user";
            m.content = QStringLiteral("message %1.%2 ").arg(i).arg(j).repeated(20);
            m.has_stats = j % 2 == 1;
            m.stats.generated_tokens = i;
            if (m.has_stats) m.routing = sample_routing();
            if (!db.add_message(m)) return 4;
        }
        std::printf("committed %d\n", i);
        std::fflush(stdout);
    }
}

}  // namespace

class StorageTest : public QObject {
    Q_OBJECT

private slots:
    void newDatabaseHasCurrentSchemaWalAndForeignKeys() {
        QTemporaryDir dir;
        const QString path = dir.filePath("history.sqlite");
        RunDatabase db("fresh");
        QVERIFY(db.open(path).ok());
        QCOMPARE(db.schema_version(), RunDatabase::kSchemaVersion);
        QSqlQuery q(QSqlDatabase::database("fresh"));
        QVERIFY(q.exec("PRAGMA journal_mode") && q.next());
        QCOMPARE(q.value(0).toString(), QStringLiteral("wal"));
        QVERIFY(q.exec("PRAGMA foreign_keys") && q.next());
        QCOMPARE(q.value(0).toInt(), 1);
        // A message of a run that does not exist is refused.
        MessageRecord orphan;
        orphan.run_id = 42;
        orphan.role = "user";
        orphan.content = "hello";
        QVERIFY(!db.add_message(orphan).ok());
    }

    void migratesVersion1Database() {
        QTemporaryDir dir;
        const QString path = dir.filePath("v1.sqlite");
        QStringList statements(std::begin(kVersion1Schema), std::end(kVersion1Schema));
        statements << "INSERT INTO runs (id, kind, title, model, created_at, finished_at, status) VALUES "
                      "(7, 'chat', 'old chat', '/m/old', 1700000000000, 1700000100000, 'finished')"
                   << "INSERT INTO messages (run_id, position, role, content, created_at) VALUES (7, 0, 'user', 'hi there', 1700000000000)"
                   << "INSERT INTO messages (run_id, position, role, content, created_at) VALUES (7, 1, 'assistant', 'hello', 1700000050000)";
        write_raw(path, statements, 1);

        RunDatabase db("v1");
        const Status opened = db.open(path);
        QVERIFY2(opened.ok(), opened.ok() ? "" : opened.error().message.c_str());
        QCOMPARE(db.schema_version(), RunDatabase::kSchemaVersion);
        auto runs = db.list_runs();
        QVERIFY(runs.ok());
        QCOMPARE(runs->size(), 1);
        const RunRecord& run = runs->first();
        QCOMPARE(run.id, 7);
        QCOMPARE(run.title, QStringLiteral("old chat"));
        QCOMPARE(run.status, QStringLiteral("finished"));
        QCOMPARE(run.message_count, 2);
        QCOMPARE(run.updated_at.toMSecsSinceEpoch(), 1700000100000);  // backfilled from finished_at
        auto messages = db.messages(7);
        QVERIFY(messages.ok());
        QCOMPARE(messages->size(), 2);
        QCOMPARE(messages->at(0).content, QStringLiteral("hi there"));
        QCOMPARE(messages->at(1).content, QStringLiteral("hello"));
        QVERIFY(!messages->at(1).has_stats);
        QVERIFY(messages->at(1).routing.empty());

        // The migrated database takes messages with statistics.
        MessageRecord reply;
        reply.run_id = 7;
        reply.position = 2;
        reply.role = "assistant";
        reply.content = "more";
        reply.has_stats = true;
        reply.stats.generated_tokens = 3;
        reply.routing = sample_routing();
        QVERIFY(db.add_message(reply).ok());
        QCOMPARE(db.messages(7)->at(2).routing.counts, sample_routing().counts);
    }

    void migratesVersion2Database() {
        QTemporaryDir dir;
        const QString path = dir.filePath("v2.sqlite");
        QStringList statements(std::begin(kVersion1Schema), std::end(kVersion1Schema));
        statements << QStringList(std::begin(kVersion2Additions), std::end(kVersion2Additions));
        statements << "INSERT INTO runs (id, kind, title, model, created_at) VALUES (1, 'chat', 'v2 chat', '/m/a', 1700000000000)"
                   << "INSERT INTO messages (id, run_id, position, role, content, created_at, prompt_tokens, generated_tokens, ttft_s, "
                      "decode_tokens_per_s, finish_reason) VALUES (10, 1, 0, 'assistant', 'answer', 1700000000000, 12, 34, 0.5, 20.0, 'stop')";
        write_raw(path, statements, 2);

        RunDatabase db("v2");
        QVERIFY(db.open(path).ok());
        QCOMPARE(db.schema_version(), RunDatabase::kSchemaVersion);
        auto messages = db.messages(1);
        QVERIFY(messages.ok());
        QCOMPARE(messages->size(), 1);
        QVERIFY(messages->at(0).has_stats);
        QCOMPARE(messages->at(0).stats.prompt_tokens, 12);
        QCOMPARE(messages->at(0).stats.generated_tokens, 34);
        QCOMPARE(messages->at(0).stats.finish_reason, QStringLiteral("stop"));
        QCOMPARE(db.list_runs()->first().updated_at.toMSecsSinceEpoch(), 1700000000000);
    }

    void refusesDatabaseOfNewerVersion() {
        QTemporaryDir dir;
        const QString path = dir.filePath("future.sqlite");
        write_raw(path, {"CREATE TABLE runs (id INTEGER PRIMARY KEY)"}, RunDatabase::kSchemaVersion + 5);
        RunDatabase db("future");
        const Status opened = db.open(path);
        QVERIFY(!opened.ok());
        QVERIFY(QString::fromStdString(opened.error().message).contains("newer"));
        QCOMPARE(db.schema_version(), RunDatabase::kSchemaVersion + 5);  // left untouched
    }

    // A file that is not a database, and a database with a page overwritten: each is moved aside byte for byte,
    // a fresh history opens and works, and a sound history is left as it is.
    void damagedHistoryIsMovedAsideAndAFreshOneStarted() {
        QTemporaryDir dir;
        const QString path = dir.filePath("history.sqlite");
        {
            RunDatabase db("sound");
            auto copy = db.open_checked(path);
            QVERIFY(copy.ok());
            QVERIFY(copy->isEmpty());
            for (int i = 0; i < 200; ++i) QVERIFY(db.create_run("chat", QString("run %1 ").arg(i) + QString(200, 'x'), "m", "{}").ok());
        }
        {
            RunDatabase db("sound-again");
            auto copy = db.open_checked(path);
            QVERIFY(copy.ok() && copy->isEmpty());
            QCOMPARE(db.list_runs()->size(), 200);
        }
        // Overwrite the second page of the checkpointed file.
        QFile file(path);
        QVERIFY(file.open(QIODevice::ReadWrite));
        QVERIFY(file.size() > 3 * 4096);
        file.seek(4096);
        file.write(QByteArray(4096, char(0xab)));
        file.close();
        QFile::remove(path + "-wal");
        QFile::remove(path + "-shm");
        QFile damaged_file(path);
        QVERIFY(damaged_file.open(QIODevice::ReadOnly));
        const QByteArray damaged_bytes = damaged_file.readAll();
        damaged_file.close();
        {
            RunDatabase db("damaged");
            auto copy = db.open_checked(path);
            QVERIFY2(copy.ok(), copy.ok() ? "" : copy.error().message.c_str());
            QVERIFY(!copy->isEmpty());
            QFile kept(*copy);
            QVERIFY(kept.open(QIODevice::ReadOnly));
            QCOMPARE(kept.readAll(), damaged_bytes);
            QCOMPARE(db.list_runs()->size(), 0);
            QVERIFY(db.create_run("chat", "after the repair", "m", "{}").ok());
        }
        // Not a database at all.
        const QString garbage = dir.filePath("garbage.sqlite");
        QFile text(garbage);
        QVERIFY(text.open(QIODevice::WriteOnly));
        text.write(QByteArray("this is not a database\n").repeated(500));
        text.close();
        RunDatabase db("garbage");
        auto copy = db.open_checked(garbage);
        QVERIFY2(copy.ok(), copy.ok() ? "" : copy.error().message.c_str());
        QVERIFY(copy->contains(".damaged-"));
        QVERIFY(QFileInfo::exists(*copy));
        QVERIFY(db.create_run("chat", "fresh", "m", "{}").ok());
    }

    void roundTripsRunsMessagesAndRouting() {
        QTemporaryDir dir;
        const QString path = dir.filePath("history.sqlite");
        RunDatabase db("roundtrip");
        QVERIFY(db.open(path).ok());
        auto first = db.create_run("chat", "Prime numbers", "/models/a", R"({"temperature":0.6})");
        auto second = db.create_run("chat", "Rust lifetimes", "/models/b", "{}");
        QVERIFY(first.ok() && second.ok());

        MessageRecord question;
        question.run_id = *first;
        question.position = 0;
        question.role = "user";
        question.content = "List primes below 20 — ünïcödé ✓";
        MessageRecord answer;
        answer.run_id = *first;
        answer.position = 1;
        answer.role = "assistant";
        answer.content = "<think>small</think>2, 3, 5, 7, 11, 13, 17, 19";
        answer.has_stats = true;
        answer.stats = {21, 17, 0.125, 400.5, 33.25, "stop"};
        answer.routing = sample_routing();
        QVERIFY(db.add_message(question).ok());
        QVERIFY(db.add_message(answer).ok());

        auto messages = db.messages(*first);
        QVERIFY(messages.ok());
        QCOMPARE(messages->size(), 2);
        QCOMPARE(messages->at(0).content, question.content);
        QVERIFY(!messages->at(0).has_stats);
        const MessageRecord& stored = messages->at(1);
        QCOMPARE(stored.content, answer.content);
        QCOMPARE(stored.stats.prompt_tokens, 21);
        QCOMPARE(stored.stats.generated_tokens, 17);
        QCOMPARE(stored.stats.time_to_first_token_s, 0.125);
        QCOMPARE(stored.stats.prefill_tokens_per_s, 400.5);
        QCOMPARE(stored.stats.decode_tokens_per_s, 33.25);
        QCOMPARE(stored.stats.finish_reason, QStringLiteral("stop"));
        QCOMPARE(stored.routing.experts, 4);
        QCOMPARE(stored.routing.layers, (QVector<int>{1, 3}));
        QCOMPARE(stored.routing.counts, sample_routing().counts);

        RunFilter by_text;
        by_text.text = "primes below";
        QCOMPARE(db.list_runs(by_text)->size(), 1);
        QCOMPARE(db.list_runs(by_text)->first().id, *first);
        RunFilter by_title;
        by_title.text = "lifetimes";
        QCOMPARE(db.list_runs(by_title)->first().id, *second);
        RunFilter wildcard;  // LIKE wildcards in the search are literal
        wildcard.text = "%";
        QCOMPARE(db.list_runs(wildcard)->size(), 0);
        RunFilter by_model;
        by_model.model = "/models/b";
        QCOMPARE(db.list_runs(by_model)->size(), 1);
        RunFilter by_kind;
        by_kind.kind = "finetune";
        QCOMPARE(db.list_runs(by_kind)->size(), 0);
        RunFilter by_date;
        by_date.since = QDate::currentDate().addDays(1);
        QCOMPARE(db.list_runs(by_date)->size(), 0);
        by_date.since = QDate::currentDate();
        by_date.until = QDate::currentDate();
        QCOMPARE(db.list_runs(by_date)->size(), 2);
        QCOMPARE(*db.models(), (QStringList{"/models/a", "/models/b"}));

        QVERIFY(db.rename_run(*second, "Borrow checker").ok());
        QCOMPARE(db.run(*second)->title, QStringLiteral("Borrow checker"));
        QVERIFY(db.finish_run(*second, "finished").ok());
        QVERIFY(db.run(*second)->finished_at.isValid());

        QVERIFY(db.delete_run(*first).ok());
        QCOMPARE(count_rows(path, "messages"), 0);
        QCOMPARE(count_rows(path, "routing_summaries"), 0);
        QCOMPARE(db.list_runs()->size(), 1);
        QVERIFY(!db.run(*first).ok());
    }

    void imagesOfDeletedRunsAreReported() {
        QTemporaryDir dir;
        const QString path = dir.filePath("history.sqlite");
        RunDatabase db("images-test");
        QVERIFY(db.open(path).ok());
        const QString shared(64, 'a'), only_first(64, 'b');
        auto first = db.create_run("chat", "first", "/m", "{}");
        auto second = db.create_run("chat", "second", "/m", "{}");
        QVERIFY(first && second);
        MessageRecord m;
        m.run_id = *first;
        m.role = "user";
        m.content = "look";
        m.images = {only_first, shared};
        QVERIFY(db.add_message(m).ok());
        m.run_id = *second;
        m.images = {shared};
        QVERIFY(db.add_message(m).ok());
        QCOMPARE(db.messages(*first)->first().images, (QStringList{only_first, shared}));  // in attachment order
        // The picture the other run still shows stays.
        QCOMPARE(*db.delete_run(*first), QStringList{only_first});
        QCOMPARE(count_rows(path, "message_images"), 1);
        QCOMPARE(*db.delete_run(*second), QStringList{shared});

        // The store keeps one file per content and deletes what it is told.
        ImageStore store(dir.filePath("images"));
        const QString picture = dir.filePath("picture.png");
        {
            QFile file(picture);
            QVERIFY(file.open(QIODevice::WriteOnly));
            file.write("\x89PNG pretend bytes");
        }
        auto added = store.add(picture);
        QVERIFY(added.ok());
        QCOMPARE(*store.add(picture), *added);
        QCOMPARE(QDir(store.folder()).entryList(QDir::Files), QStringList{*added + ".png"});
        QVERIFY(store.path(*added).endsWith(".png"));
        QVERIFY(store.path("../history.sqlite").isEmpty());
        store.remove({*added});
        QVERIFY(store.path(*added).isEmpty());
    }

    // A version 3 history (a flat list of messages per run, possibly with a gap in positions) becomes a chain:
    // each message follows the one before it, the last is the head, and nothing has alternatives.
    void migratesVersion3DatabaseIntoChains() {
        QTemporaryDir dir;
        const QString path = dir.filePath("v3.sqlite");
        QStringList statements(std::begin(kVersion1Schema), std::end(kVersion1Schema));
        statements << QStringList(std::begin(kVersion2Additions), std::end(kVersion2Additions))
                   << QStringList(std::begin(kVersion3Additions), std::end(kVersion3Additions));
        statements << "INSERT INTO runs (id, kind, title, model, created_at, updated_at) VALUES (3, 'chat', 'v3', '/m', 1, 1)"
                   << "INSERT INTO runs (id, kind, title, model, created_at, updated_at) VALUES (4, 'chat', 'empty', '/m', 1, 1)";
        const char* const roles[] = {"system", "user", "assistant", "user", "assistant"};
        for (int i = 0; i < 5; ++i)
            statements << QStringLiteral("INSERT INTO messages (id, run_id, position, role, content, created_at) VALUES (%1, 3, %2, '%3', 'm%4', 1)")
                              .arg(20 + i)
                              .arg(i < 3 ? i : i + 1)  // a gap, as an old edit could leave
                              .arg(roles[i])
                              .arg(i);
        write_raw(path, statements, 3);

        RunDatabase db("v3");
        const Status opened = db.open(path);
        QVERIFY2(opened.ok(), opened.ok() ? "" : opened.error().message.c_str());
        auto messages = db.messages(3);
        QVERIFY(messages.ok());
        QCOMPARE(messages->size(), 5);
        for (int i = 0; i < 5; ++i) {
            QCOMPARE(messages->at(i).id, qint64(20 + i));
            QCOMPARE(messages->at(i).content, QStringLiteral("m%1").arg(i));
            QCOMPARE(*messages->at(i).parent_id, i == 0 ? qint64(0) : qint64(19 + i));
            QCOMPARE(messages->at(i).siblings, QList<qint64>{20 + i});
            QVERIFY(messages->at(i).complete);
        }
        QCOMPARE(db.run(3)->message_count, 5);
        QCOMPARE(db.messages(4)->size(), 0);
        QCOMPARE(db.run(4)->message_count, 0);
        // A new message follows the head.
        MessageRecord next;
        next.run_id = 3;
        next.role = "user";
        next.content = "after the migration";
        auto id = db.add_message(next);
        QVERIFY(id.ok());
        QCOMPARE(db.messages(3)->last().id, *id);
        QCOMPARE(*db.messages(3)->last().parent_id, qint64(24));
        QCOMPARE(db.messages(3)->last().position, 5);
    }

    // Edit and regenerate add siblings: both branches stay, the run shows the newest, any branch can be shown
    // again and then shows its latest continuation; deleting a message takes its branch with it.
    void editsAndRegenerationsKeepEveryBranch() {
        QTemporaryDir dir;
        RunDatabase db("branches");
        QVERIFY(db.open(dir.filePath("history.sqlite")).ok());
        const qint64 run = *db.create_run("chat", "branches", "/m", "{}");
        auto add = [&](const QString& role, const QString& content, std::optional<qint64> parent = std::nullopt) {
            MessageRecord m;
            m.run_id = run;
            m.parent_id = parent;
            m.role = role;
            m.content = content;
            auto id = db.add_message(m);
            return id.ok() ? *id : qint64(-1);
        };
        auto contents = [&] {
            QStringList shown;
            const auto messages = db.messages(run);
            for (const MessageRecord& m : *messages) shown << m.content;
            return shown;
        };
        const qint64 q1 = add("user", "q1");
        const qint64 a1 = add("assistant", "a1");
        const qint64 q2 = add("user", "q2");
        const qint64 a2 = add("assistant", "a2");
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2", "a2"}));
        // Regenerate a2: a sibling under q2.
        const qint64 a2b = add("assistant", "a2b", q2);
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2", "a2b"}));
        QCOMPARE(db.messages(run)->last().siblings, (QList<qint64>{a2, a2b}));
        // Edit q2: a sibling under a1, answered.
        const qint64 q2b = add("user", "q2 edited", a1);
        add("assistant", "a3");
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2 edited", "a3"}));
        QCOMPARE(db.messages(run)->at(2).siblings, (QList<qint64>{q2, q2b}));
        QCOMPARE(db.run(run)->message_count, 4);
        // Back to the first q2: its newest continuation (a2b) is shown.
        QVERIFY(db.select_branch(run, q2).ok());
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2", "a2b"}));
        QVERIFY(db.select_branch(run, a2).ok());
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2", "a2"}));
        // Edit the first message: a second root.
        add("user", "q1 edited", 0);
        QCOMPARE(contents(), (QStringList{"q1 edited"}));
        QCOMPARE(db.messages(run)->first().siblings, (QList<qint64>{q1, db.messages(run)->first().id}));
        QVERIFY(db.select_branch(run, q1).ok());
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2 edited", "a3"}));  // the newest child at every step
        // Refused: a message of another run, a parent of another run.
        const qint64 other = *db.create_run("chat", "other", "/m", "{}");
        QVERIFY(!db.select_branch(other, q1).ok());
        MessageRecord stray;
        stray.run_id = other;
        stray.parent_id = q1;
        stray.role = "user";
        QVERIFY(!db.add_message(stray).ok());
        // Deleting a message removes its whole branch; a run whose head went with it shows its newest message.
        QVERIFY(db.select_branch(run, a2).ok());
        QSqlQuery q(QSqlDatabase::database("branches"));
        QVERIFY(q.exec(QStringLiteral("DELETE FROM messages WHERE id = %1").arg(q2)));
        QCOMPARE(count_rows(dir.filePath("history.sqlite"), "messages"), 5);  // q1 a1 q2b a3 "q1 edited"
        QCOMPARE(contents(), (QStringList{"q1 edited"}));
        QVERIFY(db.select_branch(run, q2b).ok());
        QCOMPARE(contents(), (QStringList{"q1", "a1", "q2 edited", "a3"}));
    }

    // A reply is stored as it streams (complete = false), then finished with its statistics and routing.
    void streamingReplyIsUpdatedInPlace() {
        QTemporaryDir dir;
        RunDatabase db("streaming");
        QVERIFY(db.open(dir.filePath("history.sqlite")).ok());
        const qint64 run = *db.create_run("chat", "streaming", "/m", "{}");
        MessageRecord question;
        question.run_id = run;
        question.role = "user";
        question.content = "count";
        QVERIFY(db.add_message(question).ok());
        MessageRecord reply;
        reply.run_id = run;
        reply.role = "assistant";
        reply.complete = false;
        reply.id = *db.add_message(reply);
        QVERIFY(!db.messages(run)->last().complete);
        reply.content = "1, 2,";
        QVERIFY(db.update_message(reply).ok());
        QCOMPARE(db.messages(run)->last().content, QStringLiteral("1, 2,"));
        QVERIFY(!db.messages(run)->last().complete);
        QVERIFY(!db.messages(run)->last().has_stats);
        reply.content = "1, 2, 3";
        reply.complete = true;
        reply.has_stats = true;
        reply.stats = {5, 3, 0.5, 10, 20, "stop"};
        reply.routing = sample_routing();
        QVERIFY(db.update_message(reply).ok());
        const MessageRecord stored = db.messages(run)->last();
        QCOMPARE(stored.content, QStringLiteral("1, 2, 3"));
        QVERIFY(stored.complete);
        QCOMPARE(stored.stats.generated_tokens, 3);
        QCOMPARE(stored.routing.counts, sample_routing().counts);
        reply.id = 12345;
        QVERIFY(!db.update_message(reply).ok());
    }

    void routingBlobsRejectMismatchedSizes() {
        QVERIFY(!decode_routing(4, QByteArray(8, 0), QByteArray(12, 0)).ok());
        QVERIFY(!decode_routing(4, QByteArray(7, 0), QByteArray(28, 0)).ok());
        const RoutingSummary r = sample_routing();
        auto decoded = decode_routing(r.experts, encode_routing_layers(r), encode_routing_counts(r));
        QVERIFY(decoded.ok());
        QCOMPARE(decoded->counts, r.counts);
    }

    void storageRunsJobsInOrderOffTheCallingThread() {
        QTemporaryDir dir;
        Storage storage;
        testing::QueuedSpy opened(&storage, &Storage::opened);
        storage.open(dir.filePath("history.sqlite"));
        QTRY_VERIFY_WITH_TIMEOUT(opened.size() >= 1, 5000);

        auto run_id = std::make_shared<qint64>(0);
        QThread* caller = QThread::currentThread();
        bool off_thread = false;
        storage.post([run_id, caller, &off_thread](RunDatabase& db) {
            off_thread = QThread::currentThread() != caller;
            *run_id = *db.create_run("chat", "async", "/m", "{}");
        });
        storage.write([run_id](RunDatabase& db) -> mwb::Status {
            MessageRecord m;
            m.run_id = *run_id;  // set by the job before: jobs run in order
            m.role = "user";
            m.content = "queued";
            auto id = db.add_message(m);
            if (!id) return id.error();
            return mwb::Status::success();
        });
        QList<MessageRecord> result;
        bool done = false;
        storage.request<QList<MessageRecord>>([run_id](RunDatabase& db) { return db.messages(*run_id); }, this,
                                              [&](const QList<MessageRecord>& messages) {
                                                  result = messages;
                                                  done = true;
                                              });
        QTRY_VERIFY(done);
        QVERIFY(off_thread);
        QCOMPARE(result.size(), 1);
        QCOMPARE(result.first().content, QStringLiteral("queued"));

        testing::QueuedSpy failed(&storage, &Storage::failed);
        storage.request<RunRecord>([](RunDatabase& db) { return db.run(999); }, this, [](const RunRecord&) { QFAIL("a missing run has no record"); });
        QTRY_COMPARE(failed.size(), 1);
        QVERIFY(failed.first().first().toString().contains("999"));
    }

    void killedWriterLeavesEarlierDataIntact() {
        QTemporaryDir dir;
        const QString path = dir.filePath("history.sqlite");
        QProcess writer;
        writer.setProcessChannelMode(QProcess::ForwardedErrorChannel);
        writer.start(QCoreApplication::applicationFilePath(), {"--crash-writer", path});
        QVERIFY(writer.waitForStarted());
        int last_committed = -1;
        QByteArray pending;
        while (last_committed < 40) {
            QVERIFY2(writer.waitForReadyRead(60000), "the writer process stopped reporting");
            pending += writer.readAllStandardOutput();
            while (pending.contains('\n')) {
                const qsizetype end = pending.indexOf('\n');
                const QByteArray line = pending.left(end);
                pending.remove(0, end + 1);
                if (line.startsWith("committed ")) last_committed = line.mid(10).toInt();
            }
        }
        writer.kill();  // SIGKILL in the middle of its next transactions
        QVERIFY(writer.waitForFinished());
        QCOMPARE(writer.exitStatus(), QProcess::CrashExit);

        RunDatabase db("after-crash");
        QVERIFY(db.open(path).ok());
        QCOMPARE(*db.integrity_check(), QStringLiteral("ok"));
        QCOMPARE(db.schema_version(), RunDatabase::kSchemaVersion);
        auto runs = db.list_runs();
        QVERIFY(runs.ok());
        QVERIFY(runs->size() >= last_committed + 1);
        for (const RunRecord& run : *runs) {
            const int i = run.title.mid(4).toInt();
            auto messages = db.messages(run.id);
            QVERIFY(messages.ok());
            // Every run the writer reported is complete; a later one holds a prefix of its messages.
            if (i <= last_committed) QCOMPARE(messages->size(), 3);
            for (int j = 0; j < messages->size(); ++j) {
                QCOMPARE(messages->at(j).content, QStringLiteral("message %1.%2 ").arg(i).arg(j).repeated(20));
                if (j % 2 == 1) QCOMPARE(messages->at(j).routing.counts, sample_routing().counts);
            }
        }
    }
};

int main(int argc, char** argv) {
    if (argc == 3 && QByteArray(argv[1]) == "--crash-writer") {
        QCoreApplication app(argc, argv);
        return run_crash_writer(argv[2]);
    }
    QCoreApplication app(argc, argv);
    StorageTest test;
    return QTest::qExec(&test, argc, argv);
}

#include "storage_test.moc"
