// The Fine-tune page: a stepped LoRA wizard on the training engine — the model; the data with its format,
// statistics, bad lines and a preview of what is learnt; the method (presets and every setting, with a memory
// plan checked against the memory allowed); training with live curves, pause, resume and stop; and the result
// (export, merge, chat with the adapter). Every run is kept in the run history with its curve.
#pragma once

#include <QWidget>
#include <optional>

#include "app/services/dataset_preview.h"
#include "app/services/model_library.h"
#include "app/services/run_database.h"
#include "app/services/training_worker.h"
#include "ui/app_context.h"

class QLabel;
class QWizard;

namespace mwb::ui {

// What the steps share.
struct FineTuneState {
    QString model_directory;
    std::optional<app::ModelCard> card;
    QString data_path;
    train::DatasetOptions data;
    double validation_split = 0;
    app::DatasetPreview preview;
    app::TrainingJob job;  // complete once the method step is done
    qint64 run_id = 0;     // in the run history
    QString adapter_directory;
    bool finished = false, stopped = false;
    // Resuming an interrupted run: the job goes on from its checkpoint, the curve from these steps.
    bool resuming = false;
    QList<app::TrainingStep> earlier_steps;
};

class FineTunePage : public QWidget {
    Q_OBJECT
public:
    explicit FineTunePage(AppContext& context, QWidget* parent = nullptr);

    // The model the app has loaded: the wizard starts from it.
    void set_loaded_model(const QString& directory);
    bool is_training() const { return training_.is_running(); }
    app::TrainingHost& training() { return training_; }
    QWizard* wizard() const { return wizard_; }
    FineTuneState& state() { return state_; }

    // Goes on with a training run of the history that did not finish, from its last checkpoint.
    void resume_run(qint64 run_id);

signals:
    void chatWithAdapter(QString model_directory, QString adapter_directory);
    void statusMessage(QString text);

private:
    // A run that a crash or a kill left open, with a checkpoint to go on from: offered in the banner.
    void look_for_interrupted_run();
    void resume(const app::RunRecord& run, const QString& checkpoint);

    AppContext& context_;
    app::TrainingHost training_;
    FineTuneState state_;
    QWizard* wizard_;
    QWidget* banner_;
    QLabel* banner_text_;
    std::optional<app::RunRecord> interrupted_;
    QString interrupted_checkpoint_;
};

}  // namespace mwb::ui
