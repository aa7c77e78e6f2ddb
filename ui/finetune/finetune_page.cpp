#include "ui/finetune/finetune_page.h"

#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>
#include <QWizard>

#include "app/services/training_params.h"
#include "ui/finetune/finetune_steps.h"

namespace mwb::ui {

namespace {
enum PageId { kModelPage, kDataPage, kMethodPage, kTrainPage, kFinishPage };
}  // namespace

FineTunePage::FineTunePage(AppContext& context, QWidget* parent) : QWidget(parent), context_(context) {
    wizard_ = new QWizard(this);
    wizard_->setObjectName("fineTuneWizard");
    wizard_->setWindowFlags(Qt::Widget);  // a page of the window, not a dialog
    wizard_->setWizardStyle(QWizard::ClassicStyle);
    wizard_->setOption(QWizard::NoCancelButton);
    wizard_->setButtonText(QWizard::CommitButton, tr("Use the adapter >"));
    wizard_->setPage(kModelPage, new ModelStep(context_, state_));
    wizard_->setPage(kDataPage, new DataStep(context_, state_));
    wizard_->setPage(kMethodPage, new MethodStep(context_, state_));
    wizard_->setPage(kTrainPage, new TrainStep(context_, state_, training_));
    wizard_->setPage(kFinishPage, new FinishStep(context_, state_, *this));
    banner_ = new QWidget;
    banner_->setObjectName("resumeBanner");
    banner_->setStyleSheet("#resumeBanner { background: #fff4ce; }");
    banner_text_ = new QLabel;
    banner_text_->setWordWrap(true);
    banner_text_->setStyleSheet("QLabel { color: #5c4400; }");
    auto* resume = new QPushButton(tr("Resume"));
    resume->setObjectName("resumeTraining");
    auto* dismiss = new QPushButton(tr("Dismiss"));
    auto* banner_layout = new QHBoxLayout(banner_);
    banner_layout->addWidget(banner_text_, 1);
    banner_layout->addWidget(resume);
    banner_layout->addWidget(dismiss);
    banner_->setVisible(false);
    banner_->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(banner_);
    layout->addWidget(wizard_);
    connect(wizard_, &QWizard::finished, this, [this] { wizard_->restart(); });
    connect(resume, &QPushButton::clicked, this, [this] {
        if (interrupted_) this->resume(*interrupted_, interrupted_checkpoint_);
    });
    connect(dismiss, &QPushButton::clicked, this, [this] {
        banner_->setVisible(false);
        if (!interrupted_) return;
        const qint64 id = interrupted_->id;
        context_.storage.write([id](app::RunDatabase& db) { return db.finish_run(id, "interrupted"); });
        interrupted_.reset();
    });
    connect(&context_.storage, &app::Storage::opened, this, &FineTunePage::look_for_interrupted_run);
}

void FineTunePage::look_for_interrupted_run() {
    app::RunFilter filter;
    filter.kind = "finetune";
    context_.storage.request<QList<app::RunRecord>>([filter](app::RunDatabase& db) { return db.list_runs(filter); }, this,
                                                    [this](const QList<app::RunRecord>& runs) {
                                                        if (training_.is_running()) return;
                                                        for (const app::RunRecord& run : runs) {
                                                            if (run.status != "open") continue;
                                                            auto job = app::training_job_from_params(run.model, run.params_json);
                                                            if (!job) continue;
                                                            const QString checkpoint =
                                                                app::latest_checkpoint(QString::fromStdString(job->options.output_directory));
                                                            if (checkpoint.isEmpty()) continue;
                                                            interrupted_ = run;
                                                            interrupted_checkpoint_ = checkpoint;
                                                            banner_text_->setText(
                                                                tr("The training run “%1” did not finish (the app was closed by force or crashed). "
                                                                   "It can go on from its checkpoint %2.")
                                                                    .arg(run.title, QFileInfo(checkpoint).fileName()));
                                                            banner_->setVisible(true);
                                                            return;  // the newest one
                                                        }
                                                    });
}

void FineTunePage::resume_run(qint64 run_id) {
    context_.storage.request<app::RunRecord>([run_id](app::RunDatabase& db) { return db.run(run_id); }, this, [this](const app::RunRecord& run) {
        auto job = app::training_job_from_params(run.model, run.params_json);
        const QString checkpoint = job ? app::latest_checkpoint(QString::fromStdString(job->options.output_directory)) : QString();
        if (checkpoint.isEmpty()) {
            emit statusMessage(tr("“%1” has no checkpoint left to go on from").arg(run.title));
            return;
        }
        resume(run, checkpoint);
    });
}

void FineTunePage::resume(const app::RunRecord& run, const QString& checkpoint) {
    if (training_.is_running()) {
        emit statusMessage(tr("A training run is going on: stop it first"));
        return;
    }
    auto job = app::training_job_from_params(run.model, run.params_json);
    if (!job) {
        emit statusMessage(QString::fromStdString(job.error().message));
        return;
    }
    job->resume_checkpoint = checkpoint;
    const qint64 checkpoint_step = train::checkpoint_step(checkpoint.toStdString());
    const qint64 id = run.id;
    banner_->setVisible(false);
    interrupted_.reset();
    context_.storage.request<QList<app::TrainingStep>>(
        [id](app::RunDatabase& db) { return db.training_steps(id); }, this,
        [this, id, checkpoint_step, job = *job](const QList<app::TrainingStep>& steps) {
            state_ = {};
            state_.model_directory = job.model_directory;
            state_.job = job;
            state_.run_id = id;
            state_.resuming = true;
            for (const app::TrainingStep& step : steps)
                if (step.step <= checkpoint_step) state_.earlier_steps << step;
            // Straight to the Train step; later restarts begin with the model again.
            const int first = wizard_->startId();
            wizard_->setStartId(kTrainPage);
            wizard_->restart();
            wizard_->setStartId(first);
        });
}

void FineTunePage::set_loaded_model(const QString& directory) {
    if (auto* model = qobject_cast<ModelStep*>(wizard_->page(kModelPage)); model && state_.model_directory.isEmpty()) model->set_model(directory);
}

}  // namespace mwb::ui
