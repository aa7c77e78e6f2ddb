#include "app/documents/document_ingest.h"

#include <QCryptographicHash>
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <memory>

#include "app/documents/embedding_model.h"
#include "app/documents/ocr_engine.h"

namespace mwb::app {

namespace {

Result<QString> sha256_of(const QString& path) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) return make_error((QFileInfo(path).fileName() + ": the file cannot be opened: " + file.errorString()).toStdString());
    QCryptographicHash hash(QCryptographicHash::Sha256);
    if (!hash.addData(&file)) return make_error((QFileInfo(path).fileName() + ": the file cannot be read").toStdString());
    return QString::fromLatin1(hash.result().toHex());
}

bool cancelled(const std::atomic<bool>* cancel) { return cancel && cancel->load(); }

// Drops a half-indexed document. Should that fail as well, it stays "indexing": never searched, and indexed
// again when its file is next added.
void drop_partial(DocumentStore& store, qint64 document_id) { static_cast<void>(store.remove_document(document_id)); }

// Indexes one file whose hash is `sha256`; fills `outcome`.
void index_file(DocumentStore& store, const QString& path, const QString& sha256, const IngestOptions& options,
                std::unique_ptr<OcrEngine>& ocr, IngestProgress progress,
                const std::function<void(const IngestProgress&)>& report, const std::atomic<bool>* cancel, FileOutcome& outcome) {
    auto fail = [&](const std::string& message) {
        outcome.state = FileOutcome::State::Failed;
        outcome.error = QString::fromStdString(message);
    };
    auto reader = DocumentReader::open(path, options.limits);
    if (!reader) return fail(reader.error().message);
    const QFileInfo info(path);
    DocumentRecord record;
    record.path = path;
    record.name = info.fileName();
    record.collection = options.collection.isEmpty() ? info.dir().dirName() : options.collection;
    record.kind = (*reader)->kind();
    record.sha256 = sha256;
    record.size = info.size();
    auto document_id = store.begin_document(record);
    if (!document_id) return fail(document_id.error().message);

    progress.pages = (*reader)->page_count();
    for (int number = 1; number <= progress.pages; ++number) {
        if (cancelled(cancel)) {
            drop_partial(store, *document_id);
            outcome.state = FileOutcome::State::Cancelled;
            return;
        }
        progress.page = number;
        progress.stage = QStringLiteral("reading");
        if (report) report(progress);
        // Tesseract starts only for the first page that needs it.
        auto page = (*reader)->read_page(number, nullptr);
        if (page && page->source == PageSource::Ocr) {
            if (!ocr) {
                auto opened = OcrEngine::open(options.ocr_languages);
                if (!opened) {
                    drop_partial(store, *document_id);
                    return fail(record.name.toStdString() + ": page " + std::to_string(number) + " needs OCR: " + opened.error().message);
                }
                ocr = std::move(*opened);
            }
            progress.stage = QStringLiteral("ocr");
            if (report) report(progress);
            page = (*reader)->read_page(number, ocr.get());
        }
        if (!page) {
            drop_partial(store, *document_id);
            return fail(page.error().message);
        }
        const QList<TextChunk> chunks = chunk_page(number, page->text, options.chunks);
        if (auto stored = store.add_page(*document_id, *page, chunks); !stored) {
            drop_partial(store, *document_id);
            return fail(stored.error().message);
        }
        outcome.pages = number;
        outcome.ocr_pages += page->source == PageSource::Ocr;
        outcome.chunks += int(chunks.size());
    }
    if (Status finished = store.finish_document(*document_id, outcome.pages, outcome.ocr_pages); !finished) return fail(finished.error().message);
    if (outcome.chunks == 0) outcome.error = QStringLiteral("no text was found in %1").arg(record.name);
}

}  // namespace

int IngestReport::count(FileOutcome::State state) const {
    return int(std::count_if(files.begin(), files.end(), [state](const FileOutcome& f) { return f.state == state; }));
}

QStringList collect_document_files(const QStringList& paths, QList<FileOutcome>* missing, QStringList* skipped) {
    QStringList files;
    for (const QString& given : paths) {
        const QFileInfo info(given);
        if (info.isDir()) {
            QStringList found;
            QDirIterator it(info.absoluteFilePath(), QDir::Files | QDir::Readable, QDirIterator::Subdirectories);
            while (it.hasNext()) {
                const QString file = it.next();
                if (is_document_file(file)) found << file;
                else if (skipped) *skipped << file;
            }
            found.sort();
            files << found;
        } else if (info.exists()) {
            files << info.absoluteFilePath();
        } else if (missing) {
            FileOutcome outcome;
            outcome.path = given;
            outcome.state = FileOutcome::State::Failed;
            outcome.error = given + ": the file does not exist";
            *missing << outcome;
        }
    }
    files.removeDuplicates();
    return files;
}

IngestReport ingest_documents(DocumentStore& store, const QStringList& paths, const IngestOptions& options,
                              const std::function<void(const IngestProgress&)>& progress, const std::atomic<bool>* cancel) {
    IngestReport report;
    const QStringList files = collect_document_files(paths, &report.files, &report.skipped);
    std::unique_ptr<OcrEngine> ocr;
    IngestProgress at;
    at.files = int(files.size());
    for (const QString& path : files) {
        ++at.file;
        at.path = path;
        at.page = at.pages = 0;
        FileOutcome outcome;
        outcome.path = path;
        if (cancelled(cancel)) {
            report.cancelled = true;
            break;
        }
        if (progress) progress(at);
        auto hash = sha256_of(path);
        auto known = store.find(path);
        if (!hash || !known) {
            outcome.state = FileOutcome::State::Failed;
            outcome.error = QString::fromStdString(!hash ? hash.error().message : known.error().message);
        } else if (*known && (*known)->sha256 == *hash && (*known)->status == QLatin1String("ready")) {
            outcome.state = FileOutcome::State::Unchanged;
            outcome.pages = (*known)->page_count;
            outcome.ocr_pages = (*known)->ocr_pages;
            outcome.chunks = (*known)->chunk_count;
        } else {
            index_file(store, path, *hash, options, ocr, at, progress, cancel, outcome);
        }
        report.cancelled = outcome.state == FileOutcome::State::Cancelled;
        report.files << outcome;
        if (report.cancelled) break;
    }
    return report;
}

Result<int> embed_missing_chunks(DocumentStore& store, EmbeddingModel& embedding, int batch,
                                 const std::function<void(int, int)>& progress, const std::atomic<bool>* cancel) {
    auto total = store.count_chunks_without_vectors(embedding.key());
    if (!total) return total.error();
    int done = 0;
    while (!cancelled(cancel)) {
        auto pending = store.chunks_without_vectors(embedding.key(), std::max(1, batch));
        if (!pending) return pending.error();
        if (pending->isEmpty()) break;
        QStringList texts;
        QList<qint64> ids;
        for (const Passage& p : *pending) {
            texts << p.text;
            ids << p.chunk_id;
        }
        auto vectors = embedding.embed_documents(texts);
        if (!vectors) return vectors.error();
        MWB_TRY(store.add_vectors(embedding.key(), ids, QList<std::vector<float>>(vectors->begin(), vectors->end())));
        done += int(ids.size());
        if (progress) progress(done, *total);
    }
    return done;
}

}  // namespace mwb::app
