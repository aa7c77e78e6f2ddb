#include "ui/documents/library_panel.h"

#include <QComboBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QSet>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "app/documents/document_reader.h"
#include "app/documents/ocr_engine.h"
#include "ui/browse_field.h"

namespace mwb::ui {

namespace {

constexpr int kDocumentIdRole = Qt::UserRole;
constexpr int kCollectionRole = Qt::UserRole + 1;

QString file_filter() {
    QStringList patterns;
    for (const QString& suffix : app::document_suffixes()) patterns << "*." + suffix;
    return QObject::tr("Documents (%1)").arg(patterns.join(' '));
}

}  // namespace

LibraryPanel::LibraryPanel(app::DocumentLibrary& library, QWidget* parent) : QWidget(parent), library_(library) {
    setAcceptDrops(true);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);

    auto* title = new QLabel(tr("<b>Library</b> — drop PDFs, scans, images, text or folders here"));
    title->setWordWrap(true);
    layout->addWidget(title);

    tree_ = new QTreeWidget;
    tree_->setObjectName("documentTree");
    tree_->setHeaderLabels({tr("Document"), tr("Pages"), tr("Chunks"), tr("Status")});
    tree_->header()->setStretchLastSection(false);
    tree_->header()->setSectionResizeMode(0, QHeaderView::Stretch);
    for (int column = 1; column < 4; ++column) tree_->header()->setSectionResizeMode(column, QHeaderView::ResizeToContents);
    tree_->setRootIsDecorated(true);
    tree_->setToolTip(tr("Check collections or documents to ask only them; with nothing checked, questions look in every document."));
    layout->addWidget(tree_, 1);

    auto* form = new QFormLayout;
    collection_ = new QComboBox;
    collection_->setObjectName("collection");
    collection_->setEditable(true);
    collection_->setToolTip(tr("The collection new documents join; type a new name to start one. Left empty, each file joins "
                               "the collection named after its folder."));
    collection_->lineEdit()->setPlaceholderText(tr("the folder's name"));
    collection_->setCurrentText(QString());
    form->addRow(tr("Add to"), collection_);
    ocr_language_ = new QComboBox;
    ocr_language_->setObjectName("ocrLanguage");
    const QStringList languages = app::OcrEngine::installed_languages();
    ocr_language_->addItems(languages);
    ocr_language_->setCurrentText(languages.contains("eng") ? "eng" : languages.value(0));
    ocr_language_->setToolTip(tr("The language Tesseract reads scanned pages and images in. Install tesseract-ocr-LANG packages for more."));
    if (languages.isEmpty()) {
        ocr_language_->addItem(tr("none installed"));
        ocr_language_->setEnabled(false);
    }
    form->addRow(tr("OCR language"), ocr_language_);
    layout->addLayout(form);

    auto* buttons = new QHBoxLayout;
    add_files_ = new QPushButton(tr("Add files…"));
    add_folder_ = new QPushButton(tr("Add folder…"));
    remove_ = new QPushButton(tr("Remove"));
    remove_->setToolTip(tr("Remove the selected document from the index (the file stays on disk)"));
    buttons->addWidget(add_files_);
    buttons->addWidget(add_folder_);
    buttons->addStretch();
    buttons->addWidget(remove_);
    layout->addLayout(buttons);

    auto* progress_row = new QHBoxLayout;
    progress_ = new QProgressBar;
    progress_->setObjectName("ingestProgress");
    progress_label_ = new QLabel;
    progress_label_->setWordWrap(true);
    cancel_ = new QPushButton(tr("Cancel"));
    progress_row->addWidget(progress_, 1);
    progress_row->addWidget(cancel_);
    layout->addLayout(progress_row);
    layout->addWidget(progress_label_);
    progress_->setVisible(false);
    cancel_->setVisible(false);

    auto* embedding_row = new QHBoxLayout;
    embedding_folder_ = new QLineEdit;
    embedding_folder_->setObjectName("embeddingFolder");
    embedding_folder_->setPlaceholderText(tr("Embedding model folder (optional, e.g. gte-Qwen2-1.5B-instruct)"));
    auto* use_embedding = new QPushButton(tr("Use"));
    embedding_row->addWidget(browse_field(embedding_folder_, Browse::Folder, tr("Embedding model folder")), 1);
    embedding_row->addWidget(use_embedding);
    layout->addLayout(embedding_row);
    retrieval_mode_ = new QLabel;
    retrieval_mode_->setObjectName("retrievalMode");
    retrieval_mode_->setWordWrap(true);
    layout->addWidget(retrieval_mode_);
    retrieval_mode_->setText(tr("Retrieval: BM25 full-text search alone. Open an embedding model for hybrid search."));

    connect(add_files_, &QPushButton::clicked, this, [this] {
        const QStringList files = QFileDialog::getOpenFileNames(this, tr("Add documents"), QString(), file_filter());
        if (!files.isEmpty()) add_paths(files);
    });
    connect(add_folder_, &QPushButton::clicked, this, [this] {
        const QString folder = QFileDialog::getExistingDirectory(this, tr("Add a folder of documents"));
        if (!folder.isEmpty()) add_paths({folder});
    });
    connect(remove_, &QPushButton::clicked, this, &LibraryPanel::remove_selected);
    connect(cancel_, &QPushButton::clicked, this, [this] {
        library_.cancel();
        progress_label_->setText(tr("Cancelling after this page…"));
    });
    connect(use_embedding, &QPushButton::clicked, this, &LibraryPanel::apply_embedding_model);
    connect(tree_, &QTreeWidget::itemChanged, this, [this](QTreeWidgetItem* item, int column) {
        if (updating_ || column != 0) return;
        // A collection's box sets its documents' boxes.
        updating_ = true;
        for (int i = 0; i < item->childCount(); ++i) item->child(i)->setCheckState(0, item->checkState(0));
        updating_ = false;
        emit scopeChanged();
    });

    connect(&library_, &app::DocumentLibrary::documentsChanged, this, &LibraryPanel::show_documents);
    connect(&library_, &app::DocumentLibrary::progress, this, &LibraryPanel::show_progress);
    connect(&library_, &app::DocumentLibrary::addFinished, this, &LibraryPanel::show_summary);
    connect(&library_, &app::DocumentLibrary::failed, this, [this](const QString& message) { emit statusMessage(tr("Documents: %1").arg(message)); });
    connect(&library_, &app::DocumentLibrary::embeddingProgress, this, [this](int done, int total) {
        progress_->setVisible(done < total);
        progress_->setRange(0, total);
        progress_->setValue(done);
        progress_label_->setText(tr("Embedding chunks: %1 of %2").arg(done).arg(total));
    });
    connect(&library_, &app::DocumentLibrary::embeddingChanged, this, [this](const QString& folder, const QString& message) {
        if (!message.isEmpty()) emit statusMessage(tr("Embedding model: %1").arg(message));
        retrieval_mode_->setText(folder.isEmpty() ? tr("Retrieval: BM25 full-text search alone. Open an embedding model for hybrid search.")
                                                  : tr("Retrieval: hybrid — BM25 and %1, fused by reciprocal rank (k = 60).").arg(folder));
        if (!message.isEmpty()) retrieval_mode_->setText(retrieval_mode_->text() + "\n" + message);
    });
}

void LibraryPanel::add_paths(const QStringList& paths) {
    if (library_.adding()) {
        emit statusMessage(tr("Documents are being added; wait for them or cancel"));
        return;
    }
    app::IngestOptions options;
    options.collection = collection_->currentText().trimmed();
    if (ocr_language_->isEnabled()) options.ocr_languages = ocr_language_->currentText();
    progress_->setVisible(true);
    progress_->setRange(0, 0);
    cancel_->setVisible(true);
    progress_label_->setText(tr("Adding %n item(s)…", nullptr, int(paths.size())));
    library_.add(paths, options);
}

void LibraryPanel::show_progress(const app::IngestProgress& p) {
    progress_->setRange(0, std::max(1, p.files * 100));
    const int within = p.pages > 0 ? 100 * p.page / p.pages : 0;
    progress_->setValue((p.file - 1) * 100 + within);
    QString line = tr("File %1 of %2: %3").arg(p.file).arg(p.files).arg(QFileInfo(p.path).fileName());
    if (p.pages > 0) line += tr(" — page %1 of %2").arg(p.page).arg(p.pages);
    if (p.stage == QLatin1String("ocr")) line += tr(" (OCR)");
    progress_label_->setText(line);
}

void LibraryPanel::show_summary(const app::IngestSummary& summary) {
    progress_->setVisible(false);
    cancel_->setVisible(false);
    QStringList parts;
    parts << tr("%n added", nullptr, summary.indexed);
    if (summary.unchanged) parts << tr("%n unchanged", nullptr, summary.unchanged);
    if (summary.failed) parts << tr("%n failed", nullptr, summary.failed);
    QString text = (summary.cancelled ? tr("Cancelled: ") : QString()) + parts.join(", ");
    for (const QString& error : summary.errors) text += "\n• " + error;
    for (const QString& note : summary.notes) text += "\n• " + note;
    progress_label_->setText(text);
    emit statusMessage(parts.join(", "));
}

void LibraryPanel::show_documents(const QList<app::DocumentRecord>& documents, const QStringList& collections) {
    // Keep the user's choices across the rebuild.
    const app::DocumentScope chosen = scope();
    updating_ = true;
    tree_->clear();
    const QString typed = collection_->currentText();
    collection_->clear();
    collection_->addItems(collections);
    collection_->setCurrentText(typed);
    QHash<QString, QTreeWidgetItem*> groups;
    for (const QString& name : collections) {
        auto* group = new QTreeWidgetItem(tree_, {name});
        group->setData(0, kCollectionRole, name);
        group->setFlags(group->flags() | Qt::ItemIsUserCheckable);
        group->setCheckState(0, chosen.collections.contains(name) ? Qt::Checked : Qt::Unchecked);
        group->setExpanded(true);
        groups.insert(name, group);
    }
    for (const app::DocumentRecord& d : documents) {
        auto* item = new QTreeWidgetItem(groups.value(d.collection), {d.name, QString::number(d.page_count), QString::number(d.chunk_count),
                                                                      d.status == QLatin1String("ready") ? tr("ready") : tr("interrupted")});
        item->setData(0, kDocumentIdRole, d.id);
        item->setToolTip(0, d.path + (d.ocr_pages ? tr("\n%n page(s) read by OCR", nullptr, d.ocr_pages) : QString()));
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        const bool checked = chosen.documents.contains(d.id) || chosen.collections.contains(d.collection);
        item->setCheckState(0, checked ? Qt::Checked : Qt::Unchecked);
    }
    updating_ = false;
    emit scopeChanged();
}

app::DocumentScope LibraryPanel::scope() const {
    app::DocumentScope scope;
    for (int g = 0; g < tree_->topLevelItemCount(); ++g) {
        QTreeWidgetItem* group = tree_->topLevelItem(g);
        if (group->checkState(0) == Qt::Checked) {
            scope.collections << group->data(0, kCollectionRole).toString();
            continue;
        }
        for (int i = 0; i < group->childCount(); ++i)
            if (group->child(i)->checkState(0) == Qt::Checked) scope.documents << group->child(i)->data(0, kDocumentIdRole).toLongLong();
    }
    return scope;
}

QString LibraryPanel::scope_text() const {
    const app::DocumentScope s = scope();
    if (s.everything()) return tr("all documents");
    QStringList parts;
    if (!s.collections.isEmpty()) parts << tr("collections %1").arg(s.collections.join(", "));
    if (!s.documents.isEmpty()) parts << tr("%n document(s)", nullptr, int(s.documents.size()));
    return parts.join(tr(" and "));
}

void LibraryPanel::set_checked(qint64 document_id, bool checked) {
    for (int g = 0; g < tree_->topLevelItemCount(); ++g)
        for (int i = 0; i < tree_->topLevelItem(g)->childCount(); ++i) {
            QTreeWidgetItem* item = tree_->topLevelItem(g)->child(i);
            if (item->data(0, kDocumentIdRole).toLongLong() == document_id) item->setCheckState(0, checked ? Qt::Checked : Qt::Unchecked);
        }
}

void LibraryPanel::remove_selected() {
    QTreeWidgetItem* item = tree_->currentItem();
    if (!item || !item->data(0, kDocumentIdRole).isValid()) {
        emit statusMessage(tr("Select a document to remove"));
        return;
    }
    library_.remove(item->data(0, kDocumentIdRole).toLongLong());
}

void LibraryPanel::apply_embedding_model() {
    const QString folder = embedding_folder_->text().trimmed();
    retrieval_mode_->setText(folder.isEmpty() ? tr("Closing the embedding model…") : tr("Opening %1…").arg(folder));
    library_.setEmbeddingModel(folder);
}

void LibraryPanel::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void LibraryPanel::dropEvent(QDropEvent* event) {
    QStringList paths;
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile()) paths << url.toLocalFile();
    if (paths.isEmpty()) return;
    event->acceptProposedAction();
    add_paths(paths);
}

}  // namespace mwb::ui
