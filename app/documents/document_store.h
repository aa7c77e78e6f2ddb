// The documents part of the history database (tables of schema 6, see run_database.cpp): documents, the text
// of their pages, chunks with their FTS5 index, and chunk vectors per embedding model. It works on a
// RunDatabase's connection, so the same thread rule applies: one thread per connection.
#pragma once

#include <QList>
#include <QSqlDatabase>
#include <QString>
#include <QVariantList>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "app/documents/document_types.h"
#include "engine/core/result.h"

namespace mwb::app {

class DocumentStore {
public:
    explicit DocumentStore(QSqlDatabase connection) : db_(std::move(connection)) {}

    // The document stored for `path`, if any.
    Result<std::optional<DocumentRecord>> find(const QString& path) const;
    Result<QList<DocumentRecord>> documents() const;
    Result<QStringList> collections() const;

    // Starts (re)indexing: any earlier version of the document at `record.path` goes, with its pages and
    // chunks; the new one is "indexing" until finish_document(). Returns its id.
    Result<qint64> begin_document(const DocumentRecord& record);
    // Stores one page and its chunks in one transaction; returns the chunks' ids, in order.
    Result<QList<qint64>> add_page(qint64 document_id, const PageText& page, const QList<TextChunk>& chunks);
    Status finish_document(qint64 document_id, int page_count, int ocr_pages);
    Status remove_document(qint64 document_id);
    Status set_collection(qint64 document_id, const QString& collection);

    Result<PageText> page(qint64 document_id, int number) const;

    // Chunks matching an FTS5 query, best first (bm25: smaller is better; Passage::score is -bm25).
    Result<QList<Passage>> search_text(const QString& fts_query, const DocumentScope& scope, int limit) const;
    // The chunks with these ids, in that order (ids that are gone are left out).
    Result<QList<Passage>> passages(const QList<qint64>& chunk_ids) const;

    // Vectors of an embedding model (`model` names it, e.g. its folder).
    Status add_vectors(const QString& model, const QList<qint64>& chunk_ids, const QList<std::vector<float>>& vectors);
    // Calls `visit` with every vector of `model` in scope.
    Status for_each_vector(const QString& model, const DocumentScope& scope,
                           const std::function<void(qint64 chunk_id, std::span<const float> vector)>& visit) const;
    // Chunks in ready documents that have no vector of `model` yet (at most `limit`), for embedding them later.
    Result<QList<Passage>> chunks_without_vectors(const QString& model, int limit) const;
    Result<int> chunk_count(const DocumentScope& scope) const;
    Result<int> count_chunks_without_vectors(const QString& model) const;

private:
    Result<QList<DocumentRecord>> read_documents(const QString& where, const QVariantList& values) const;

    QSqlDatabase db_;
};

// Word boxes of an OCR'd page as stored: per word, little-endian int32 start and end, float32 x, y, w, h.
QByteArray encode_word_boxes(const QList<WordBox>& words);
QList<WordBox> decode_word_boxes(const QByteArray& blob);

}  // namespace mwb::app
