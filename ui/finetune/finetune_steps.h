// The steps of the Fine-tune wizard, each a QWizardPage that checks its input before Next.
#pragma once

#include <QFutureWatcher>
#include <QWizardPage>

#include "app/services/dataset_preview.h"
#include "ui/finetune/finetune_page.h"

class QCheckBox;
class QChart;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QLineSeries;
class QListWidget;
class QPushButton;
class QSpinBox;
class QTextBrowser;
class QTimer;
class QValueAxis;

namespace mwb::ui {

class ModelStep : public QWizardPage {
    Q_OBJECT
public:
    ModelStep(AppContext& context, FineTuneState& state);
    void set_model(const QString& directory);
    void initializePage() override;
    bool isComplete() const override;

private:
    void describe();
    void list_library();
    AppContext& context_;
    FineTuneState& state_;
    QComboBox* library_;  // the models of the Models page
    QLineEdit* path_;
    QTextBrowser* card_;
    QFutureWatcher<Result<app::ModelCard>> watcher_;
    QFutureWatcher<QList<app::ModelEntry>> scan_;
};

class DataStep : public QWizardPage {
    Q_OBJECT
public:
    DataStep(AppContext& context, FineTuneState& state);
    void set_data(const QString& path);
    bool isComplete() const override;

signals:
    void previewShown();

private:
    void read();
    void show_preview();
    AppContext& context_;
    FineTuneState& state_;
    QLineEdit* path_;
    QSpinBox* cutoff_;
    QCheckBox* all_tokens_;
    QDoubleSpinBox* validation_;
    QLabel* summary_;
    QListWidget* bad_lines_;
    QTextBrowser* preview_;
    QTimer* debounce_;
    QFutureWatcher<app::DatasetPreview> watcher_;
    bool reading_ = false;
};

class MethodStep : public QWizardPage {
    Q_OBJECT
public:
    MethodStep(AppContext& context, FineTuneState& state);
    void initializePage() override;
    bool isComplete() const override;
    bool validatePage() override;
    void apply_preset(int index);
    void set_memory_allowed(qint64 bytes);

signals:
    void planShown();

private:
    app::TrainingJob job() const;
    void estimate();
    AppContext& context_;
    FineTuneState& state_;
    QComboBox* preset_;
    QCheckBox *attention_, *dense_, *shared_, *experts_;
    QSpinBox *rank_, *steps_, *batch_, *accumulation_, *warmup_, *seed_, *checkpoint_every_;
    QDoubleSpinBox *alpha_, *dropout_, *lr_, *epochs_, *clip_, *memory_allowed_;
    QCheckBox *rslora_, *checkpointing_;
    QComboBox *scheduler_, *device_;
    QLabel* plan_;
    QTimer* debounce_;
    QFutureWatcher<std::pair<QString, bool>> watcher_;  // the plan as text, and whether it fits
    bool fits_ = false;
};

class TrainStep : public QWizardPage {
    Q_OBJECT
public:
    TrainStep(AppContext& context, FineTuneState& state, app::TrainingHost& training);
    void initializePage() override;
    bool isComplete() const override;
    int points() const;

signals:
    void trainingEnded();

private:
    void on_step(const app::TrainingStep& step, bool store);
    void on_finished(const QString& adapter, bool stopped);
    void on_failed(const QString& message);
    AppContext& context_;
    FineTuneState& state_;
    app::TrainingHost& training_;
    QChart* chart_;
    QLineSeries *loss_, *validation_;
    QValueAxis *steps_axis_, *loss_axis_;
    QLabel* progress_;
    QPushButton *pause_, *stop_;
    double elapsed_ = 0, lowest_ = 0, highest_ = 0;
};

class FinishStep : public QWizardPage {
    Q_OBJECT
public:
    FinishStep(AppContext& context, FineTuneState& state, FineTunePage& page);
    void initializePage() override;
    // Copies the adapter's files to `directory` (a PEFT adapter folder).
    bool export_adapter(const QString& directory);
    // Answers the prompt with the base model and with the adapter, side by side (the base model must be loaded).
    void compare(const QString& prompt);

signals:
    void compared();

private:
    AppContext& context_;
    FineTuneState& state_;
    QLabel* summary_;
    QLabel* merge_status_;
    QFutureWatcher<QString> merge_;
    QString merged_to_;
    QTextBrowser *base_reply_, *adapter_reply_;
    quint64 comparison_ = 0;
};

}  // namespace mwb::ui
