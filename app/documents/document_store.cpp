#include "app/documents/document_store.h"

#include <QDataStream>
#include <QDateTime>
#include <QHash>
#include <QIODevice>
#include <QSqlQuery>
#include <QVariant>
#include <cstring>

#include "app/services/sql_support.h"

namespace mwb::app {

namespace {

const char* const kPassageColumns =
    "SELECT c.id, c.document_id, d.path, d.name, c.page, c.char_start, c.char_end, c.text ";

Passage read_passage(const QSqlQuery& q) {
    Passage p;
    p.chunk_id = q.value(0).toLongLong();
    p.document_id = q.value(1).toLongLong();
    p.path = q.value(2).toString();
    p.document = q.value(3).toString();
    p.page = q.value(4).toInt();
    p.char_start = q.value(5).toInt();
    p.char_end = q.value(6).toInt();
    p.text = q.value(7).toString();
    return p;
}

// " AND (...)" restricting documents `d` to ready ones in `scope`, with its bound values appended to `values`.
QString scope_clause(const DocumentScope& scope, QVariantList& values) {
    QString clause = QStringLiteral(" AND d.status = 'ready'");
    if (scope.everything()) return clause;
    QStringList alternatives;
    if (!scope.collections.isEmpty()) {
        alternatives << "d.collection IN (" + QStringList(scope.collections.size(), "?").join(',') + ")";
        for (const QString& c : scope.collections) values << c;
    }
    if (!scope.documents.isEmpty()) {
        alternatives << "d.id IN (" + QStringList(scope.documents.size(), "?").join(',') + ")";
        for (qint64 id : scope.documents) values << id;
    }
    return clause + " AND (" + alternatives.join(" OR ") + ")";
}

Result<QSqlQuery> run(QSqlDatabase db, const QString& sql, const QVariantList& values, const char* what) {
    QSqlQuery q(db);
    q.setForwardOnly(true);
    if (!q.prepare(sql)) return sql_error(QString("cannot ") + what, q.lastError());
    for (const QVariant& v : values) q.addBindValue(v);
    if (!q.exec()) return sql_error(QString("cannot ") + what, q.lastError());
    return q;
}

}  // namespace

QByteArray encode_word_boxes(const QList<WordBox>& words) {
    QByteArray blob;
    QDataStream out(&blob, QIODevice::WriteOnly);
    out.setByteOrder(QDataStream::LittleEndian);
    out.setFloatingPointPrecision(QDataStream::SinglePrecision);
    for (const WordBox& w : words)
        out << qint32(w.char_start) << qint32(w.char_end) << float(w.box.x()) << float(w.box.y()) << float(w.box.width()) << float(w.box.height());
    return blob;
}

QList<WordBox> decode_word_boxes(const QByteArray& blob) {
    QList<WordBox> words;
    QDataStream in(blob);
    in.setByteOrder(QDataStream::LittleEndian);
    in.setFloatingPointPrecision(QDataStream::SinglePrecision);
    constexpr int kRecordBytes = 24;
    for (qsizetype i = 0; i + kRecordBytes <= blob.size(); i += kRecordBytes) {
        qint32 start = 0, end = 0;
        float x = 0, y = 0, w = 0, h = 0;
        in >> start >> end >> x >> y >> w >> h;
        words << WordBox{start, end, QRectF(x, y, w, h)};
    }
    return words;
}

Result<QList<DocumentRecord>> DocumentStore::read_documents(const QString& where, const QVariantList& values) const {
    auto q = run(db_,
                 "SELECT d.id, d.path, d.name, d.collection, d.kind, d.sha256, d.size, d.page_count, d.ocr_pages, d.status, "
                 "(SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id) FROM documents d " + where +
                 " ORDER BY d.collection, d.name, d.id",
                 values, "list the documents");
    if (!q) return q.error();
    QList<DocumentRecord> records;
    while (q->next()) {
        DocumentRecord r;
        r.id = q->value(0).toLongLong();
        r.path = q->value(1).toString();
        r.name = q->value(2).toString();
        r.collection = q->value(3).toString();
        r.kind = q->value(4).toString();
        r.sha256 = q->value(5).toString();
        r.size = q->value(6).toLongLong();
        r.page_count = q->value(7).toInt();
        r.ocr_pages = q->value(8).toInt();
        r.status = q->value(9).toString();
        r.chunk_count = q->value(10).toInt();
        records << r;
    }
    return records;
}

Result<std::optional<DocumentRecord>> DocumentStore::find(const QString& path) const {
    auto found = read_documents("WHERE d.path = ?", {path});
    if (!found) return found.error();
    if (found->isEmpty()) return std::optional<DocumentRecord>();
    return std::optional<DocumentRecord>(found->first());
}

Result<QList<DocumentRecord>> DocumentStore::documents() const { return read_documents({}, {}); }

Result<QStringList> DocumentStore::collections() const {
    auto q = run(db_, "SELECT DISTINCT collection FROM documents ORDER BY collection", {}, "list the collections");
    if (!q) return q.error();
    QStringList names;
    while (q->next()) names << q->value(0).toString();
    return names;
}

Result<qint64> DocumentStore::begin_document(const DocumentRecord& r) {
    return in_transaction<qint64>(db_, "start indexing the document", [&]() -> Result<qint64> {
        if (auto gone = run(db_, "DELETE FROM documents WHERE path = ?", {r.path}, "remove the earlier version"); !gone) return gone.error();
        auto q = run(db_,
                     "INSERT INTO documents (path, name, collection, kind, sha256, size, status, added_at) VALUES (?, ?, ?, ?, ?, ?, 'indexing', ?)",
                     {r.path, r.name, r.collection, r.kind, r.sha256, r.size, QDateTime::currentMSecsSinceEpoch()}, "store the document");
        if (!q) return q.error();
        return q->lastInsertId().toLongLong();
    });
}

Result<QList<qint64>> DocumentStore::add_page(qint64 document_id, const PageText& page, const QList<TextChunk>& chunks) {
    return in_transaction<QList<qint64>>(db_, "store the page", [&]() -> Result<QList<qint64>> {
        const QVariant boxes = page.words.isEmpty() ? QVariant(QMetaType::fromType<QByteArray>()) : QVariant(encode_word_boxes(page.words));
        auto stored = run(db_, "INSERT OR REPLACE INTO document_pages (document_id, number, source, text, word_boxes) VALUES (?, ?, ?, ?, ?)",
                          {document_id, page.number, page.source == PageSource::Ocr ? "ocr" : "text", page.text, boxes}, "store the page");
        if (!stored) return stored.error();
        QList<qint64> ids;
        QSqlQuery q(db_);
        q.prepare("INSERT INTO chunks (document_id, page, char_start, char_end, text) VALUES (?, ?, ?, ?, ?)");
        for (const TextChunk& chunk : chunks) {
            q.addBindValue(document_id);
            q.addBindValue(chunk.page);
            q.addBindValue(chunk.char_start);
            q.addBindValue(chunk.char_end);
            q.addBindValue(chunk.text);
            if (!q.exec()) return sql_error("cannot store a chunk", q.lastError());
            ids << q.lastInsertId().toLongLong();
        }
        return ids;
    });
}

Status DocumentStore::finish_document(qint64 document_id, int page_count, int ocr_pages) {
    auto q = run(db_, "UPDATE documents SET status = 'ready', page_count = ?, ocr_pages = ? WHERE id = ?",
                 {page_count, ocr_pages, document_id}, "finish the document");
    return q ? Status::success() : Status(q.error());
}

Status DocumentStore::remove_document(qint64 document_id) {
    auto q = run(db_, "DELETE FROM documents WHERE id = ?", {document_id}, "remove the document");
    return q ? Status::success() : Status(q.error());
}

Status DocumentStore::set_collection(qint64 document_id, const QString& collection) {
    auto q = run(db_, "UPDATE documents SET collection = ? WHERE id = ?", {collection, document_id}, "move the document");
    return q ? Status::success() : Status(q.error());
}

Result<PageText> DocumentStore::page(qint64 document_id, int number) const {
    auto q = run(db_, "SELECT source, text, word_boxes FROM document_pages WHERE document_id = ? AND number = ?",
                 {document_id, number}, "read the page");
    if (!q) return q.error();
    if (!q->next()) return make_error("page " + std::to_string(number) + " of the document is not in the index");
    PageText page;
    page.number = number;
    page.source = q->value(0).toString() == QLatin1String("ocr") ? PageSource::Ocr : PageSource::Text;
    page.text = q->value(1).toString();
    page.words = decode_word_boxes(q->value(2).toByteArray());
    return page;
}

Result<QList<Passage>> DocumentStore::search_text(const QString& fts_query, const DocumentScope& scope, int limit) const {
    QVariantList values{fts_query};
    const QString sql = QString(kPassageColumns) + ", bm25(chunks_fts) AS rank FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
                        "JOIN documents d ON d.id = c.document_id WHERE chunks_fts MATCH ?" + scope_clause(scope, values) +
                        " ORDER BY rank LIMIT ?";
    values << limit;
    auto q = run(db_, sql, values, "search the documents");
    if (!q) return q.error();
    QList<Passage> found;
    while (q->next()) {
        Passage p = read_passage(*q);
        p.score = -q->value(8).toDouble();
        found << p;
    }
    return found;
}

Result<QList<Passage>> DocumentStore::passages(const QList<qint64>& chunk_ids) const {
    if (chunk_ids.isEmpty()) return QList<Passage>();
    QVariantList values;
    for (qint64 id : chunk_ids) values << id;
    auto q = run(db_, QString(kPassageColumns) + "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN (" +
                          QStringList(chunk_ids.size(), "?").join(',') + ")", values, "read the passages");
    if (!q) return q.error();
    QHash<qint64, Passage> by_id;
    while (q->next()) {
        Passage p = read_passage(*q);
        by_id.insert(p.chunk_id, p);
    }
    QList<Passage> ordered;
    for (qint64 id : chunk_ids)
        if (by_id.contains(id)) ordered << by_id.value(id);
    return ordered;
}

Status DocumentStore::add_vectors(const QString& model, const QList<qint64>& chunk_ids, const QList<std::vector<float>>& vectors) {
    auto stored = in_transaction<bool>(db_, "store the chunk vectors", [&]() -> Result<bool> {
        QSqlQuery q(db_);
        q.prepare("INSERT OR REPLACE INTO chunk_vectors (chunk_id, model, vector) VALUES (?, ?, ?)");
        for (qsizetype i = 0; i < chunk_ids.size() && i < vectors.size(); ++i) {
            const auto& v = vectors[i];
            q.addBindValue(chunk_ids[i]);
            q.addBindValue(model);
            q.addBindValue(QByteArray(reinterpret_cast<const char*>(v.data()), qsizetype(v.size() * sizeof(float))));
            if (!q.exec()) return sql_error("cannot store a chunk vector", q.lastError());
        }
        return true;
    });
    return stored ? Status::success() : Status(stored.error());
}

Status DocumentStore::for_each_vector(const QString& model, const DocumentScope& scope,
                                      const std::function<void(qint64, std::span<const float>)>& visit) const {
    QVariantList values{model};
    auto q = run(db_, "SELECT v.chunk_id, v.vector FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id "
                      "JOIN documents d ON d.id = c.document_id WHERE v.model = ?" + scope_clause(scope, values),
                 values, "read the chunk vectors");
    if (!q) return q.error();
    std::vector<float> vector;
    while (q->next()) {
        const QByteArray blob = q->value(1).toByteArray();
        vector.resize(size_t(blob.size()) / sizeof(float));
        std::memcpy(vector.data(), blob.constData(), vector.size() * sizeof(float));
        visit(q->value(0).toLongLong(), vector);
    }
    return Status::success();
}

Result<QList<Passage>> DocumentStore::chunks_without_vectors(const QString& model, int limit) const {
    auto q = run(db_, QString(kPassageColumns) + "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.status = 'ready' "
                      "AND NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.model = ? AND v.chunk_id = c.id) ORDER BY c.id LIMIT ?",
                 {model, limit}, "find chunks to embed");
    if (!q) return q.error();
    QList<Passage> found;
    while (q->next()) found << read_passage(*q);
    return found;
}

Result<int> DocumentStore::count_chunks_without_vectors(const QString& model) const {
    auto q = run(db_, "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.status = 'ready' "
                      "AND NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.model = ? AND v.chunk_id = c.id)",
                 {model}, "count the chunks to embed");
    if (!q) return q.error();
    return q->next() ? q->value(0).toInt() : 0;
}

Result<int> DocumentStore::chunk_count(const DocumentScope& scope) const {
    QVariantList values;
    auto q = run(db_, "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE 1" + scope_clause(scope, values),
                 values, "count the chunks");
    if (!q) return q.error();
    return q->next() ? q->value(0).toInt() : 0;
}

}  // namespace mwb::app
