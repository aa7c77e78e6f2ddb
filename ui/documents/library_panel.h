// The left side of the Documents page: the documents in the index, grouped by collection, with check boxes
// that choose where a question looks; adding files and folders (buttons or drag and drop) with progress and
// Cancel; removing; OCR language; and the optional embedding model for hybrid retrieval.
#pragma once

#include <QWidget>

#include "app/services/document_library.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QTreeWidget;
class QTreeWidgetItem;

namespace mwb::ui {

class LibraryPanel : public QWidget {
    Q_OBJECT
public:
    explicit LibraryPanel(app::DocumentLibrary& library, QWidget* parent = nullptr);

    // Checked collections and documents; nothing checked means every document.
    app::DocumentScope scope() const;
    QString scope_text() const;
    // Adds files or folders into the collection named in the panel.
    void add_paths(const QStringList& paths);
    void set_checked(qint64 document_id, bool checked);

signals:
    void statusMessage(QString text);
    void scopeChanged();

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void show_documents(const QList<app::DocumentRecord>& documents, const QStringList& collections);
    void show_progress(const app::IngestProgress& progress);
    void show_summary(const app::IngestSummary& summary);
    void remove_selected();
    void apply_embedding_model();

    app::DocumentLibrary& library_;
    QTreeWidget* tree_;
    QComboBox* collection_;
    QComboBox* ocr_language_;
    QPushButton* add_files_;
    QPushButton* add_folder_;
    QPushButton* remove_;
    QProgressBar* progress_;
    QLabel* progress_label_;
    QPushButton* cancel_;
    QLineEdit* embedding_folder_;
    QLabel* retrieval_mode_;
    bool updating_ = false;  // the tree is being rebuilt: check changes are not the user's
};

}  // namespace mwb::ui
