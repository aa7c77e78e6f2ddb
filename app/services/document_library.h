// The document index as the app uses it, off the GUI thread. Two lanes, each a thread with its own connection
// to the history database (WAL lets one write while the other reads): adding documents and computing their
// vectors run on one, so a long folder of scans never holds up a question, which runs on the other with page
// views. Results come back as queued signals; requests carry ids so a page can drop stale answers.
#pragma once

#include <QImage>
#include <QList>
#include <QObject>
#include <QStringList>
#include <atomic>
#include <memory>
#include <mutex>

#include "app/documents/document_ingest.h"
#include "app/documents/document_types.h"
#include "app/documents/page_view.h"
#include "app/documents/retrieval.h"

namespace mwb::app {

class DatabaseLane;
class EmbeddingModel;

// What the GUI shows of an add: how many files ended how, and the errors, one line per file.
struct IngestSummary {
    int indexed = 0, unchanged = 0, failed = 0;
    bool cancelled = false;
    QStringList errors;
    QStringList notes;  // e.g. files in which no text was found
};

class DocumentLibrary : public QObject {
    Q_OBJECT
public:
    explicit DocumentLibrary(QObject* parent = nullptr);
    ~DocumentLibrary() override;  // cancels an add in progress and waits for both lanes

    // Opens the history database at `path` on both lanes, then lists the documents.
    void open(const QString& path);
    bool adding() const { return adding_.load(); }

    void add(const QStringList& paths, const IngestOptions& options);
    void cancel();  // stops an add (or the embedding of chunks) at the next page
    void remove(qint64 document_id);
    void refresh();
    // Opens an embedding model (a sentence-transformers folder) and embeds the chunks that lack its vectors;
    // an empty folder closes it (BM25 alone).
    void setEmbeddingModel(const QString& folder, const QString& device = QStringLiteral("cpu"));
    QString embeddingModel() const;

    quint64 retrieve(const QString& question, const DocumentScope& scope, const RetrievalOptions& options = {});
    // The page of a source as the viewer shows it, with [char_start, char_end) highlighted.
    quint64 loadPage(qint64 document_id, const QString& path, int page, int char_start, int char_end);

signals:
    void opened();
    void documentsChanged(QList<mwb::app::DocumentRecord> documents, QStringList collections);
    void progress(mwb::app::IngestProgress progress);
    void addFinished(mwb::app::IngestSummary summary);
    void embeddingProgress(int done, int total);
    // `folder` is the model now used (empty: none); `message` says why opening one failed, or is empty.
    void embeddingChanged(QString folder, QString message);
    void retrieved(quint64 request_id, QList<mwb::app::Passage> passages, bool hybrid);
    void pageLoaded(quint64 request_id, mwb::app::PageView view);
    void requestFailed(quint64 request_id, QString message);
    void failed(QString message);  // an add, a removal or a listing failed

private:
    // Embeds what the current embedding model lacks; on the ingest lane.
    void embed_missing(DocumentStore& store);

    std::unique_ptr<DatabaseLane> ingest_lane_;
    std::unique_ptr<DatabaseLane> query_lane_;
    std::atomic<bool> adding_{false};
    std::atomic<bool> cancel_{false};
    std::atomic<quint64> next_request_id_{1};
    // The model is shared by both lanes (it serialises its own calls); the mutex guards the pointer.
    mutable std::mutex embedding_mutex_;
    std::shared_ptr<EmbeddingModel> embedding_;
    QString embedding_folder_;
};

void register_document_metatypes();

}  // namespace mwb::app

Q_DECLARE_METATYPE(mwb::app::DocumentRecord)
Q_DECLARE_METATYPE(mwb::app::IngestProgress)
Q_DECLARE_METATYPE(mwb::app::IngestSummary)
