#include "app/services/training_worker.h"

#include <QDir>

#include "app/services/trainable_model.h"
#include "engine/model/model_graph.h"

namespace mwb::app {

void TrainingWorker::pause() { paused_.store(true); }

void TrainingWorker::resume() {
    {
        std::lock_guard lock(mutex_);
        paused_.store(false);
    }
    wake_.notify_all();
}

void TrainingWorker::stop() {
    {
        std::lock_guard lock(mutex_);
        stop_.store(true);
    }
    wake_.notify_all();
}

bool TrainingWorker::wait_while_paused() {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [this] { return !paused_.load() || stop_.load(); });
    return !stop_.load();
}

void TrainingWorker::run(const TrainingJob& job) {
    stop_.store(false);
    paused_.store(false);
    try {
        train(job);
    } catch (const std::bad_alloc&) {
        emit failed(tr("The computer ran out of memory: lower the cutoff, turn on gradient checkpointing, or train fewer modules."));
    } catch (const std::exception& error) {
        emit failed(tr("Internal error in the trainer: %1").arg(QString::fromUtf8(error.what())));
    }
}

void TrainingWorker::train(const TrainingJob& job) {
    auto fail = [this](const Error& error) { emit failed(QString::fromStdString(error.message)); };
    emit stage(tr("Loading the model"));
    auto graph = load_model_graph(job.model_directory.toStdString());
    if (!graph) return fail(graph.error());
    auto shared_graph = std::make_shared<const ModelGraph>(std::move(graph.value()));
    auto model = make_trainable_model(shared_graph, job.cuda, job.threads);
    if (!model) return fail(model.error());
    (*model)->set_gradient_checkpointing(job.gradient_checkpointing);

    emit stage(tr("Reading the data"));
    const QString tokenizer = job.tokenizer_directory.isEmpty() ? job.model_directory : job.tokenizer_directory;
    auto data = train::load_training_data(job.data_path.toStdString(), tokenizer.toStdString(), job.data, job.validation_split, job.options.seed);
    if (!data) return fail(data.error());

    auto adapter = job.init_adapter.isEmpty() ? train::LoraAdapter::create(*shared_graph, job.lora, job.options.seed)
                                              : train::LoraAdapter::load(job.init_adapter.toStdString(), *shared_graph);
    if (!adapter) return fail(adapter.error());
    const qint64 rows = qint64(data->train.rows.size()), validation_rows = qint64(data->validation.rows.size());
    train::Trainer trainer(**model, *adapter, job.options, std::move(data->train), std::move(data->validation));
    if (!job.resume_checkpoint.isEmpty())
        if (Status status = trainer.resume(job.resume_checkpoint.toStdString()); !status) return fail(status.error());
    emit started(trainer.total_steps(), trainer.step(), rows, validation_rows);

    const std::string out = job.options.output_directory;
    Status status = trainer.run([&](const train::StepReport& r) {
        TrainingStep step{r.step, r.total_steps, r.loss, r.learning_rate, r.grad_norm, r.seconds, r.tokens, r.validation_loss.value_or(-1)};
        emit stepFinished(step);
        if (!r.checkpoint.empty()) emit checkpointWritten(QString::fromStdString(r.checkpoint));
        return wait_while_paused();
    }, &stop_);
    if (!status) return fail(status.error());
    const bool stopped = trainer.step() < trainer.total_steps();
    if (stopped) {
        // Kept so that the run can go on from here.
        const std::string checkpoint = train::checkpoint_directory(out, trainer.step());
        if (Status saved = trainer.save_checkpoint(checkpoint); !saved) return fail(saved.error());
        emit checkpointWritten(QString::fromStdString(checkpoint));
    }
    emit finished(QString::fromStdString(out), stopped);
}

TrainingHost::TrainingHost(QObject* parent) : QObject(parent), worker_(new TrainingWorker) {
    qRegisterMetaType<TrainingStep>();
    thread_.setObjectName("mwb-training");
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    connect(worker_, &TrainingWorker::finished, this, [this] { running_ = false; });
    connect(worker_, &TrainingWorker::failed, this, [this] { running_ = false; });
    thread_.start();
}

TrainingHost::~TrainingHost() {
    worker_->stop();
    thread_.quit();
    thread_.wait();
}

void TrainingHost::start(const TrainingJob& job) {
    running_ = true;
    QMetaObject::invokeMethod(worker_, [worker = worker_, job] { worker->run(job); }, Qt::QueuedConnection);
}

}  // namespace mwb::app
