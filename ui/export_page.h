// The Export page: a model (folder, Hugging Face id, optional LoRA adapter) and a cluster shape (GPU type,
// GPUs per node, nodes, context, concurrency, weight format) in; the deployment plan out — verdict, table and a
// memory bar per GPU — with one tab per serving engine showing its files. Save writes them all to a folder
// with a README and records the export in the history.
#pragma once

#include <QFutureWatcher>
#include <QWidget>
#include <memory>

#include "app/services/deployment_export.h"
#include "ui/app_context.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QTabWidget;
class QTableWidget;
class QTimer;

namespace mwb::ui {

class MemoryBar;

class ExportPage : public QWidget {
    Q_OBJECT
public:
    explicit ExportPage(AppContext& context, QWidget* parent = nullptr);

    // The model Chat has loaded: planned unless the user names another folder.
    void set_loaded_model(const QString& path);
    void set_request(const app::ExportRequest& request);
    app::ExportRequest request() const;
    void save_to(const QString& folder);
    void show_target(const QString& id);
    const app::ExportPreview* preview() const { return preview_.get(); }

signals:
    void planShown();
    void exportSaved(QString folder);
    void statusMessage(QString text);

private:
    void schedule_plan();
    void show_preview(std::shared_ptr<app::ExportPreview> preview);
    void show_file(int target, int file);
    void choose_folder_and_save();

    AppContext& context_;
    QString loaded_model_;
    std::shared_ptr<app::ExportPreview> preview_;
    QFutureWatcher<std::shared_ptr<app::ExportPreview>> watcher_;
    QTimer* debounce_;
    bool replan_ = false;  // the form changed while a plan was being made

    QLineEdit* model_dir_;
    QLineEdit* model_id_;
    QLineEdit* adapter_dir_;
    QComboBox* gpu_;
    QSpinBox* gpus_per_node_;
    QSpinBox* nodes_;
    QSpinBox* context_length_;
    QSpinBox* concurrency_;
    QComboBox* format_;
    QLabel* verdict_;
    QLabel* suggestion_;
    MemoryBar* memory_;
    QTableWidget* plan_table_;
    QTabWidget* targets_;
    QPushButton* save_;
    struct TargetView {
        QComboBox* files;
        QPlainTextEdit* text;
        QLabel* how_to_run;
    };
    std::vector<TargetView> target_views_;
};

}  // namespace mwb::ui
