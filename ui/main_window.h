// The main window of moe-workbench: navigation to every page, menus and shortcuts, the model-load progress
// in the status bar, and the start-up sequence (history, crash-safe model load, the demo model).
#pragma once

#include <QMainWindow>
#include <optional>

#include "app/services/document_library.h"
#include "app/services/remote_chat.h"
#include "app/services/server_host.h"
#include "ui/app_context.h"

class QListWidget;
class QProgressBar;
class QPushButton;
class QStackedWidget;

namespace mwb::ui {

class ChatPage;
class DocumentsPage;
class ElidedLabel;
class ExportPage;
class FineTunePage;
class InspectorPage;
class ModelsPage;
class RunsPage;
class ServerPage;
class SettingsPage;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    enum class Page { Chat, Documents, Inspector, FineTune, Runs, Server, Export, Models, Settings };

    explicit MainWindow(AppContext& context, QWidget* parent = nullptr);

    // Opens the history and loads a model: the last one used, else the demo (created on first launch), unless
    // the previous session crashed while loading; then nothing is loaded and the chat page says why.
    // `model_directory`, when given (the command line's), is loaded instead.
    void start(const QString& model_directory = {});
    void show_page(Page page);
    void load_model(const QString& directory, qint64 context_length, bool cuda);
    void load_demo_model();
    // Chat replies come from a remote OpenAI-compatible endpoint (or the local server) from now on.
    void chat_with_endpoint(const app::RemoteEndpoint& endpoint);

    ChatPage* chat_page() const { return chat_; }
    ModelsPage* models_page() const { return models_; }
    RunsPage* runs_page() const { return runs_; }
    FineTunePage* finetune_page() const { return finetune_; }
    ServerPage* server_page() const { return server_page_; }
    ExportPage* export_page() const { return export_page_; }
    DocumentsPage* documents_page() const { return documents_; }
    InspectorPage* inspector_page() const { return inspector_; }
    app::DocumentLibrary& document_library() { return document_library_; }
    app::ServerHost& server_host() { return server_host_; }

private slots:
    void showStatusMessage(const QString& text);

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    void build_menus();
    void on_load_started(const QString& directory);
    void on_load_progress(double fraction, const QString& stage);
    void on_load_failed(const QString& directory, const QString& message);
    // Shows Chat with `adapter` applied, loading its base model first when another one is loaded.
    void chat_with_adapter(const QString& model, const QString& adapter);
    void on_model_loaded(const app::LoadedModelInfo& info);
    // The last model used, else the demo (created on first launch), unless the previous session crashed while
    // loading.
    void load_startup_model();
    void on_load_ended(const QString& message);
    void show_model(const app::LoadedModelInfo& info);

    AppContext& context_;
    app::ServerHost server_host_;  // the local server; stopped when the window goes
    app::DocumentLibrary document_library_;  // the document index; an add in progress is cancelled when the window goes
    std::optional<app::LoadedModelInfo> current_model_;  // what the engine holds; a failed load keeps it
    bool fall_back_on_failure_ = false;  // the command line's model is loading: on failure, load the usual one
    QListWidget* navigation_;
    QStackedWidget* pages_;
    ChatPage* chat_;
    DocumentsPage* documents_;
    InspectorPage* inspector_;
    FineTunePage* finetune_;
    QString pending_adapter_;  // applied when the model being loaded is ready
    // The message last inspected, re-run when the Inspector asks for another attention layer.
    struct Inspection {
        QList<app::ChatMessage> messages;
        QString reply;
        QString origin;
    };
    std::optional<Inspection> last_inspection_;
    ModelsPage* models_;
    RunsPage* runs_;
    SettingsPage* settings_page_;
    ServerPage* server_page_;
    ExportPage* export_page_;
    ElidedLabel* model_status_;
    QProgressBar* load_progress_;
    QPushButton* cancel_load_;
};

}  // namespace mwb::ui
