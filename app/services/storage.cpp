#include "app/services/storage.h"

#include <QAtomicInteger>

namespace mwb::app {

namespace {
QAtomicInteger<int> connection_counter;
}

Storage::Storage(QObject* parent) : QObject(parent) {
    thread_.setObjectName("mwb-storage");
    executor_ = new QObject;
    executor_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, executor_, &QObject::deleteLater);
    thread_.start();
}

Storage::~Storage() {
    post([this](RunDatabase&) { database_.reset(); });
    thread_.quit();
    thread_.wait();
}

void Storage::post(std::function<void(RunDatabase&)> job) {
    QMetaObject::invokeMethod(executor_, [this, job = std::move(job)] {
        if (!database_) {
            // Jobs posted before open() (or after a failed open) still run, against a closed connection, so
            // that their errors surface instead of silently vanishing.
            database_ = std::make_unique<RunDatabase>(QStringLiteral("mwb-storage-%1").arg(connection_counter.fetchAndAddRelaxed(1)));
        }
        job(*database_);
    }, Qt::QueuedConnection);
}

void Storage::open(const QString& path) {
    path_ = path;
    post([this, path](RunDatabase& db) {
        auto copy = db.open_checked(path);
        if (!copy) {
            emit failed(QString::fromStdString(copy.error().message));
            return;
        }
        if (!copy->isEmpty()) emit recovered(*copy);
        emit opened(path);
    });
}

void Storage::write(std::function<Status(RunDatabase&)> job) {
    post([this, job = std::move(job)](RunDatabase& db) {
        if (Status status = job(db); !status) {
            emit failed(QString::fromStdString(status.error().message));
            return;
        }
        emit runsChanged();
    });
}

void Storage::update(std::function<Status(RunDatabase&)> job) {
    post([this, job = std::move(job)](RunDatabase& db) {
        if (Status status = job(db); !status) emit failed(QString::fromStdString(status.error().message));
    });
}

void Storage::flush(QObject* context, std::function<void()> done) {
    QPointer<QObject> guard(context);
    post([guard, done = std::move(done)](RunDatabase&) {
        if (guard) QMetaObject::invokeMethod(guard, [guard, done] { if (guard) done(); }, Qt::QueuedConnection);
    });
}

}  // namespace mwb::app
