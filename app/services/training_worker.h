// LoRA training off the GUI thread. TrainingHost owns the thread and is what the UI holds: start() posts a job,
// pause/resume/stop flip flags the trainer checks between steps. The worker loads the model and the data,
// trains, reports every step through queued signals, writes checkpoints, and on Stop keeps a checkpoint of the
// step it stopped after, so the run can be resumed.
#pragma once

#include <QObject>
#include <QString>
#include <QThread>
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "app/services/training_types.h"
#include "engine/train/dataset.h"
#include "engine/train/lora_adapter.h"
#include "engine/train/trainer.h"

namespace mwb::app {

struct TrainingJob {
    QString model_directory;
    QString tokenizer_directory;  // empty: the model folder's
    QString data_path;
    train::DatasetOptions data;
    double validation_split = 0;
    QString init_adapter;         // continue this adapter; else a new one from `lora`
    train::LoraConfig lora;
    train::TrainOptions options;  // options.output_directory receives checkpoints and the adapter
    bool gradient_checkpointing = false;
    QString resume_checkpoint;    // continue a run from its checkpoint
    int threads = 0;
    bool cuda = false;            // train on the GPU (a CUDA build); else on `threads` CPU threads
};

class TrainingWorker : public QObject {
    Q_OBJECT
public:
    void run(const TrainingJob& job);
    // Thread-safe.
    void pause();
    void resume();
    void stop();
    bool is_paused() const { return paused_.load(); }

signals:
    void stage(QString text);  // what is being prepared
    void started(qint64 total_steps, qint64 first_step, qint64 rows, qint64 validation_rows);
    void stepFinished(mwb::app::TrainingStep step);
    void checkpointWritten(QString directory);
    void finished(QString adapter_directory, bool stopped);
    void failed(QString message);

private:
    void train(const TrainingJob& job);
    bool wait_while_paused();  // false when stopped

    std::atomic<bool> paused_{false}, stop_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
};

class TrainingHost : public QObject {
    Q_OBJECT
public:
    explicit TrainingHost(QObject* parent = nullptr);
    // Stops a run in flight (after its current step) and waits for the thread.
    ~TrainingHost() override;

    TrainingWorker* worker() const { return worker_; }
    void start(const TrainingJob& job);
    void pause() { worker_->pause(); }
    void resume() { worker_->resume(); }
    void stop() { worker_->stop(); }
    bool is_running() const { return running_; }

private:
    QThread thread_;
    TrainingWorker* worker_;
    bool running_ = false;
};

}  // namespace mwb::app
