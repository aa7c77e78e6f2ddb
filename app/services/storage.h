// The run history off the GUI thread: every database call runs on Storage's own thread and connection, and
// its result comes back as a call on the requesting object's thread. Jobs run in the order they are posted.
#pragma once

#include <QObject>
#include <QPointer>
#include <QThread>
#include <functional>
#include <memory>

#include "app/services/run_database.h"

namespace mwb::app {

class Storage : public QObject {
    Q_OBJECT
public:
    explicit Storage(QObject* parent = nullptr);
    // Finishes every posted write before returning, so that quitting never drops history.
    ~Storage() override;

    // Opens (and migrates) the database at `path`; emits opened() or failed().
    void open(const QString& path);

    // Runs `job` on the storage thread.
    void post(std::function<void(RunDatabase&)> job);

    // Runs `job` on the storage thread and hands its result to `done` on `context`'s thread (dropped when
    // `context` is gone by then). A failed Result is reported through failed() and `done` is not called.
    template <class T>
    void request(std::function<Result<T>(RunDatabase&)> job, QObject* context, std::function<void(T)> done) {
        QPointer<QObject> guard(context);
        post([this, job = std::move(job), guard, done = std::move(done)](RunDatabase& db) {
            Result<T> result = job(db);
            if (!result) {
                emit failed(QString::fromStdString(result.error().message));
                return;
            }
            auto value = std::make_shared<T>(std::move(result.value()));
            if (guard) QMetaObject::invokeMethod(guard, [guard, done, value] { if (guard) done(*value); }, Qt::QueuedConnection);
        });
    }
    // A write whose failure is reported through failed(); runsChanged() follows it.
    void write(std::function<Status(RunDatabase&)> job);
    // A write that changes no listing (a streaming reply's text, a run's parameters): failures are reported,
    // runsChanged() is not emitted.
    void update(std::function<Status(RunDatabase&)> job);
    // `done` runs on `context`'s thread once every job posted before it has run.
    void flush(QObject* context, std::function<void()> done);

    QString path() const { return path_; }

signals:
    void opened(QString path);
    void failed(QString message);  // readable, for the status bar
    void recovered(QString copy);  // the history was damaged: moved to `copy`, a fresh one opened
    void runsChanged();            // a run was created, renamed, finished, deleted or got a message

private:
    QThread thread_;
    QObject* executor_ = nullptr;  // lives on thread_; jobs are queued to it
    std::unique_ptr<RunDatabase> database_;  // created, used and destroyed on thread_
    QString path_;
};

}  // namespace mwb::app
