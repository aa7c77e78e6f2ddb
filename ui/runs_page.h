// The Runs page: every run in the history with search and filters (kind, model, date), reopening a chat, the
// loss curve of a training run, export as Markdown or OpenAI-format JSON, and deletion with confirmation.
#pragma once

#include <QWidget>

#include "app/services/run_database.h"
#include "ui/app_context.h"

class QChartView;
class QComboBox;
class QLineEdit;
class QPushButton;
class QTableWidget;

namespace mwb::ui {

class RunsPage : public QWidget {
    Q_OBJECT
public:
    explicit RunsPage(AppContext& context, QWidget* parent = nullptr);

    void refresh();
    void export_selected(bool as_json, const QString& path);

signals:
    void openChatRequested(qint64 run_id);
    void openDocumentsRequested(qint64 run_id);
    void resumeTrainingRequested(qint64 run_id);
    void runDeleted(qint64 run_id);
    void statusMessage(QString text);
    void refreshed();

protected:
    void showEvent(QShowEvent* event) override;

private:
    qint64 selected_run() const;
    QString selected_kind() const;
    void show_selected();
    void ask_export(bool as_json);
    void delete_selected();

    AppContext& context_;
    QLineEdit* search_;
    QComboBox* kind_;
    QComboBox* model_;
    QComboBox* period_;
    QTableWidget* table_;
    QChartView* curve_;  // the selected training run's loss per step
    QPushButton* resume_;  // shown for a training run that did not finish
};

}  // namespace mwb::ui
