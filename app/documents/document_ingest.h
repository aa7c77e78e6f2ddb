// Adding files to the document index: each file is read page by page (OCR where a page has no text), cut into
// chunks and stored one page per transaction, so memory stays bounded and a killed process leaves at most one
// document marked "indexing", which the next run indexes again. A file whose content (SHA-256) is already
// indexed is left alone; a changed one is indexed again. A bad file is reported and the batch goes on.
#pragma once

#include <QList>
#include <QString>
#include <QStringList>
#include <atomic>
#include <functional>

#include "app/documents/chunker.h"
#include "app/documents/document_reader.h"
#include "app/documents/document_store.h"

namespace mwb::app {

class EmbeddingModel;

struct IngestOptions {
    QString collection;  // empty: each file's folder name
    ChunkOptions chunks;
    ReaderLimits limits;
    QString ocr_languages = QStringLiteral("eng");
    int embed_batch = 16;  // chunks per embedding call
};

struct IngestProgress {
    int file = 0;  // from 1
    int files = 0;
    QString path;
    int page = 0;  // from 1; 0 while the file is opened or hashed
    int pages = 0;
    QString stage;  // "reading", "ocr", "embedding"
};

struct FileOutcome {
    enum class State { Indexed, Unchanged, Failed, Cancelled };
    QString path;
    State state = State::Indexed;
    QString error;  // Failed: what went wrong, for the user
    int pages = 0;
    int ocr_pages = 0;
    int chunks = 0;
};

struct IngestReport {
    QList<FileOutcome> files;
    QStringList skipped;  // paths under the given folders that are not documents
    bool cancelled = false;
    int count(FileOutcome::State state) const;
};

// The document files named by `paths`: files as they are, folders walked recursively for document_suffixes(),
// in a stable order. Paths that do not exist come back as failed outcomes in `missing`.
QStringList collect_document_files(const QStringList& paths, QList<FileOutcome>* missing, QStringList* skipped);

// `progress` is called from the calling thread; `cancel`, when set, stops between pages.
IngestReport ingest_documents(DocumentStore& store, const QStringList& paths, const IngestOptions& options,
                              const std::function<void(const IngestProgress&)>& progress = {},
                              const std::atomic<bool>* cancel = nullptr);

// Computes the vectors that `embedding` lacks for chunks already indexed, `batch` at a time. Returns how many.
Result<int> embed_missing_chunks(DocumentStore& store, EmbeddingModel& embedding, int batch,
                                 const std::function<void(int done, int total)>& progress = {},
                                 const std::atomic<bool>* cancel = nullptr);

}  // namespace mwb::app
