// The Models page: the model library (Hugging Face cache, added folders, the demo model) with the reason
// for every folder that cannot be loaded (or failed to load), a model card with a memory estimate for the
// chosen device and context, loading, removing an entry from the list, and choosing a tokenizer folder for a
// model that has none.
#pragma once

#include <QFutureWatcher>
#include <QHash>
#include <QWidget>
#include <optional>

#include "app/services/model_library.h"
#include "app/services/remote_chat.h"
#include "ui/app_context.h"

class QComboBox;
class QLabel;
class QPushButton;
class QSpinBox;
class QTextBrowser;
class QTreeWidget;

namespace mwb::ui {

class ModelsPage : public QWidget {
    Q_OBJECT
public:
    explicit ModelsPage(AppContext& context, QWidget* parent = nullptr);

    void rescan();
    void open_folder();
    void add_folder(const QString& directory);
    void select_model(const QString& path);
    void set_loaded_model(const QString& path);
    // A load of `path` failed with `message` (empty: it loaded): shown in the list and on its card.
    void set_load_failure(const QString& path, const QString& message);
    // Takes the selected entry off the list; its files stay where they are.
    void remove_selected();
    // Reads the tokenizer of `model` from `folder` (which must hold tokenizer.json) from now on.
    void set_tokenizer_folder(const QString& model, const QString& folder);
    QString selected_path() const;

signals:
    void loadRequested(QString directory, qint64 context_length, bool cuda);
    void adapterRequested(QString model_directory, QString adapter_directory);
    void remoteChatRequested(mwb::app::RemoteEndpoint endpoint);
    void statusMessage(QString text);
    void scanFinished();
    void cardShown();

private:
    void show_entries(const QList<app::ModelEntry>& entries);
    void describe_selected();
    void show_card();
    void update_estimate();
    void choose_tokenizer_folder();
    const app::ModelEntry* entry_of(const QString& path) const;

    AppContext& context_;
    QString loaded_path_;
    QString pending_selection_;
    QList<app::ModelEntry> entries_;
    std::optional<app::ModelCard> card_;
    std::optional<app::ModelEntry> adapter_;  // the selected entry, when it is an adapter
    QString card_error_;
    QHash<QString, QString> load_failures_;
    QFutureWatcher<QList<app::ModelEntry>> scan_watcher_;
    QFutureWatcher<Result<app::ModelCard>> card_watcher_;

    QLabel* hub_label_;
    QTreeWidget* list_;
    QTextBrowser* card_label_;
    QComboBox* device_;
    QSpinBox* context_length_;
    QLabel* estimate_;
    QPushButton* load_;
    QPushButton* remove_;
    QPushButton* tokenizer_;
};

}  // namespace mwb::ui
