// The Train and Finish steps of the Fine-tune wizard.
#include <QChart>
#include <QChartView>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QPushButton>
#include <QTextBrowser>
#include <QVBoxLayout>
#include <QValueAxis>
#include <QtConcurrent>

#include "app/services/training_params.h"
#include "engine/train/merge.h"
#include "ui/finetune/finetune_steps.h"

namespace mwb::ui {

namespace {


QString clock_text(double seconds) {
    const qint64 s = qint64(seconds + 0.5);
    return QStringLiteral("%1:%2:%3").arg(s / 3600).arg(s / 60 % 60, 2, 10, QChar('0')).arg(s % 60, 2, 10, QChar('0'));
}

}  // namespace

TrainStep::TrainStep(AppContext& context, FineTuneState& state, app::TrainingHost& training)
    : context_(context), state_(state), training_(training) {
    setTitle(tr("Train"));
    setSubTitle(tr("The loss of every step; the validation loss at checkpoints and at the end. Stop keeps a checkpoint to go on from."));
    setCommitPage(true);
    loss_ = new QLineSeries;
    loss_->setName(tr("training loss"));
    validation_ = new QLineSeries;
    validation_->setName(tr("validation loss"));
    chart_ = new QChart;
    chart_->addSeries(loss_);
    chart_->addSeries(validation_);
    steps_axis_ = new QValueAxis;
    steps_axis_->setTitleText(tr("step"));
    steps_axis_->setLabelFormat("%d");
    loss_axis_ = new QValueAxis;
    loss_axis_->setTitleText(tr("loss"));
    chart_->addAxis(steps_axis_, Qt::AlignBottom);
    chart_->addAxis(loss_axis_, Qt::AlignLeft);
    for (QLineSeries* s : {loss_, validation_}) {
        s->attachAxis(steps_axis_);
        s->attachAxis(loss_axis_);
    }
    auto* view = new QChartView(chart_);
    view->setObjectName("lossChart");
    view->setRenderHint(QPainter::Antialiasing);
    progress_ = new QLabel;
    progress_->setObjectName("trainingProgress");
    progress_->setWordWrap(true);
    pause_ = new QPushButton(tr("Pause"));
    pause_->setObjectName("pauseTraining");
    stop_ = new QPushButton(tr("Stop"));
    stop_->setObjectName("stopTraining");
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(progress_, 1);
    buttons->addWidget(pause_);
    buttons->addWidget(stop_);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(view, 1);
    layout->addLayout(buttons);

    connect(pause_, &QPushButton::clicked, this, [this] {
        if (training_.worker()->is_paused()) {
            training_.resume();
            pause_->setText(tr("Pause"));
        } else {
            training_.pause();
            pause_->setText(tr("Resume"));
        }
    });
    connect(stop_, &QPushButton::clicked, this, [this] {
        training_.stop();
        stop_->setEnabled(false);
        pause_->setEnabled(false);
    });
    const app::TrainingWorker* worker = training_.worker();
    connect(worker, &app::TrainingWorker::stage, progress_, &QLabel::setText);
    connect(worker, &app::TrainingWorker::stepFinished, this, [this](const app::TrainingStep& step) { on_step(step, true); });
    connect(worker, &app::TrainingWorker::finished, this, &TrainStep::on_finished);
    connect(worker, &app::TrainingWorker::failed, this, &TrainStep::on_failed);
    connect(worker, &app::TrainingWorker::checkpointWritten, this, [this](const QString& checkpoint) {
        const qint64 run_id = state_.run_id;
        if (run_id)
            context_.storage.update(
                [run_id, checkpoint](app::RunDatabase& db) { return app::record_training_artifact(db, run_id, "checkpoints", checkpoint); });
    });
}

void TrainStep::initializePage() {
    loss_->clear();
    validation_->clear();
    elapsed_ = 0;
    state_.finished = state_.stopped = false;
    pause_->setEnabled(true);
    stop_->setEnabled(true);
    if (state_.resuming) {
        // The curve goes on from the steps the history kept up to the checkpoint.
        state_.resuming = false;
        for (const app::TrainingStep& step : std::exchange(state_.earlier_steps, {})) on_step(step, false);
    } else {
        // The run is in the history from its first moment, with its settings; its curve follows step by step.
        const QString title = tr("Fine-tune of %1").arg(QFileInfo(state_.model_directory).fileName());
        const QString model = state_.model_directory, params = app::training_params_json(state_.job);
        context_.storage.request<qint64>(
            [title, model, params](app::RunDatabase& db) { return db.create_run("finetune", title, model, params); }, this,
            [this](qint64 id) { state_.run_id = id; });
    }
    training_.start(state_.job);
}

void TrainStep::on_step(const app::TrainingStep& step, bool store) {
    loss_->append(double(step.step), step.loss);
    if (step.validation_loss >= 0) validation_->append(double(step.step), step.validation_loss);
    if (loss_->count() == 1) lowest_ = highest_ = step.loss;
    lowest_ = std::min({lowest_, step.loss, step.validation_loss >= 0 ? step.validation_loss : step.loss});
    highest_ = std::max({highest_, step.loss, step.validation_loss});
    steps_axis_->setRange(1, double(std::max<qint64>(2, step.total_steps)));
    // Whole steps only, at most about ten labels.
    steps_axis_->setTickType(QValueAxis::TicksDynamic);
    steps_axis_->setTickAnchor(1);
    steps_axis_->setTickInterval(double(std::max<qint64>(1, (step.total_steps + 9) / 10)));
    const double margin = std::max(0.05, 0.05 * (highest_ - lowest_));
    loss_axis_->setRange(lowest_ - margin, highest_ + margin);
    elapsed_ += step.seconds;
    const double eta = elapsed_ / double(loss_->count()) * double(step.total_steps - step.step);
    progress_->setText(tr("Step %1 of %2 · loss %3 · learning rate %4 · %5 tokens/s · elapsed %6 · about %7 left")
                           .arg(step.step)
                           .arg(step.total_steps)
                           .arg(step.loss, 0, 'f', 4)
                           .arg(step.learning_rate, 0, 'g', 3)
                           .arg(double(step.tokens) / std::max(step.seconds, 1e-9), 0, 'f', 0)
                           .arg(clock_text(elapsed_), clock_text(eta)));
    const qint64 run_id = state_.run_id;
    if (store && run_id) context_.storage.update([run_id, step](app::RunDatabase& db) { return db.add_training_step(run_id, step); });
}

void TrainStep::on_finished(const QString& adapter, bool stopped) {
    state_.adapter_directory = adapter;
    state_.finished = true;
    state_.stopped = stopped;
    pause_->setEnabled(false);
    stop_->setEnabled(false);
    progress_->setText(stopped ? tr("Stopped after step %1; a checkpoint was kept in %2.").arg(loss_->count()).arg(adapter)
                               : tr("Done: %1 steps. The adapter is in %2.").arg(loss_->count()).arg(adapter));
    const qint64 run_id = state_.run_id;
    const QString status = stopped ? QStringLiteral("stopped") : QStringLiteral("finished");
    if (run_id) context_.storage.write([run_id, status](app::RunDatabase& db) { return db.finish_run(run_id, status); });
    emit completeChanged();
    emit trainingEnded();
}

void TrainStep::on_failed(const QString& message) {
    progress_->setText(tr("⚠ Training failed: %1").arg(message));
    pause_->setEnabled(false);
    stop_->setEnabled(false);
    const qint64 run_id = state_.run_id;
    if (run_id) context_.storage.write([run_id](app::RunDatabase& db) { return db.finish_run(run_id, "failed"); });
    emit trainingEnded();
}

bool TrainStep::isComplete() const { return state_.finished; }
int TrainStep::points() const { return int(loss_->count()); }

FinishStep::FinishStep(AppContext& context, FineTuneState& state, FineTunePage& page) : context_(context), state_(state) {
    setTitle(tr("Use the adapter"));
    summary_ = new QLabel;
    summary_->setWordWrap(true);
    auto* export_button = new QPushButton(tr("Export the adapter…"));
    export_button->setObjectName("exportAdapter");
    auto* merge_button = new QPushButton(tr("Merge into a full model…"));
    merge_button->setObjectName("mergeAdapter");
    auto* chat = new QPushButton(tr("Chat with this adapter"));
    chat->setObjectName("chatWithAdapter");
    merge_status_ = new QLabel;
    merge_status_->setWordWrap(true);
    auto* prompt = new QLineEdit;
    prompt->setObjectName("comparePrompt");
    prompt->setPlaceholderText(tr("A prompt to answer with and without the adapter"));
    auto* compare_button = new QPushButton(tr("Compare"));
    compare_button->setObjectName("compareAdapter");
    base_reply_ = new QTextBrowser;
    base_reply_->setObjectName("baseReply");
    adapter_reply_ = new QTextBrowser;
    adapter_reply_->setObjectName("adapterReply");
    auto* compare_row = new QHBoxLayout;
    compare_row->addWidget(prompt, 1);
    compare_row->addWidget(compare_button);
    auto* replies = new QHBoxLayout;
    auto* base_column = new QVBoxLayout;
    base_column->addWidget(new QLabel(tr("Base model")));
    base_column->addWidget(base_reply_);
    auto* adapter_column = new QVBoxLayout;
    adapter_column->addWidget(new QLabel(tr("With the adapter")));
    adapter_column->addWidget(adapter_reply_);
    replies->addLayout(base_column);
    replies->addLayout(adapter_column);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(summary_);
    layout->addWidget(chat);
    layout->addWidget(export_button);
    layout->addWidget(merge_button);
    layout->addWidget(merge_status_);
    layout->addLayout(compare_row);
    layout->addLayout(replies, 1);
    connect(compare_button, &QPushButton::clicked, this, [this, prompt] { compare(prompt->text()); });
    connect(prompt, &QLineEdit::returnPressed, this, [this, prompt] { compare(prompt->text()); });
    const app::EngineWorker* engine = context_.engine.worker();
    connect(engine, &app::EngineWorker::comparisonFinished, this, [this](quint64 id, const QString& base, const QString& adapted) {
        if (id != comparison_) return;
        base_reply_->setPlainText(base);
        adapter_reply_->setPlainText(adapted);
        emit compared();
    });
    connect(engine, &app::EngineWorker::comparisonFailed, this, [this](quint64 id, const QString& message) {
        if (id != comparison_) return;
        base_reply_->setPlainText(tr("⚠ %1").arg(message));
        adapter_reply_->clear();
        emit compared();
    });
    connect(chat, &QPushButton::clicked, this, [this, &page] { emit page.chatWithAdapter(state_.model_directory, state_.adapter_directory); });
    connect(export_button, &QPushButton::clicked, this, [this, &page] {
        const QString directory = QFileDialog::getExistingDirectory(this, tr("Export the adapter to"), QDir::homePath());
        if (directory.isEmpty()) return;
        emit page.statusMessage(export_adapter(directory) ? tr("Exported the adapter to %1").arg(directory)
                                                          : tr("Could not write the adapter to %1").arg(directory));
    });
    connect(merge_button, &QPushButton::clicked, this, [this] {
        const QString directory = QFileDialog::getExistingDirectory(this, tr("An empty folder for the merged model"), QDir::homePath());
        if (directory.isEmpty()) return;
        merge_status_->setText(tr("Merging into %1…").arg(directory));
        merged_to_ = directory;
        const QString model = state_.model_directory, adapter = state_.adapter_directory;
        merge_.setFuture(QtConcurrent::run([model, adapter, directory]() -> QString {
            auto graph = load_model_graph(model.toStdString());
            if (!graph) return QString::fromStdString(graph.error().message);
            auto loaded = train::LoraAdapter::load(adapter.toStdString(), *graph);
            if (!loaded) return QString::fromStdString(loaded.error().message);
            Status status = train::merge_adapter(model.toStdString(), *graph, *loaded, directory.toStdString());
            return status ? QString() : QString::fromStdString(status.error().message);
        }));
    });
    connect(&merge_, &QFutureWatcher<QString>::finished, this, [this] {
        const QString error = merge_.result();
        merge_status_->setText(error.isEmpty() ? tr("Merged: the folder is a full model that this app, transformers and vLLM load.")
                                               : tr("⚠ Merging failed: %1").arg(error));
        const qint64 run_id = state_.run_id;
        if (error.isEmpty() && run_id)
            context_.storage.update([run_id, directory = merged_to_](app::RunDatabase& db) {
                return app::record_training_artifact(db, run_id, "merges", directory);
            });
    });
}

void FinishStep::initializePage() {
    summary_->setText(state_.stopped ? tr("Training was stopped; the adapter of the last step is in %1 (a checkpoint too, to go on later).")
                                           .arg(state_.adapter_directory)
                                     : tr("The adapter is in %1, as a PEFT adapter folder that PEFT, vLLM and SGLang load.").arg(state_.adapter_directory));
}

void FinishStep::compare(const QString& prompt) {
    if (prompt.trimmed().isEmpty()) return;
    base_reply_->setPlainText(tr("Answering…"));
    adapter_reply_->setPlainText(tr("Answering…"));
    // Greedy and short: the same prompt twice, the difference is the adapter's.
    comparison_ = context_.engine.compareAdapter({{"user", prompt.trimmed()}}, state_.adapter_directory, 48);
}

bool FinishStep::export_adapter(const QString& directory) {
    for (const char* file : {"adapter_config.json", "adapter_model.safetensors"}) {
        const QString target = QDir(directory).filePath(file);
        QFile::remove(target);
        if (!QFile::copy(QDir(state_.adapter_directory).filePath(file), target)) return false;
    }
    const qint64 run_id = state_.run_id;
    if (run_id) context_.storage.update([run_id, directory](app::RunDatabase& db) { return app::record_training_artifact(db, run_id, "exports", directory); });
    return true;
}

}  // namespace mwb::ui
