// Values of document question answering, shared by the reader, the store, retrieval and the UI: a page's
// text (with word boxes when it was read by OCR), a chunk of it, a retrieved passage.
#pragma once

#include <QList>
#include <QMetaType>
#include <QRectF>
#include <QString>
#include <QStringList>

namespace mwb::app {

// One recognised word of an OCR'd page: its characters in the page text and its box in the page, as
// fractions of the page's width and height (so it fits the page drawn at any size).
struct WordBox {
    int char_start = 0;
    int char_end = 0;
    QRectF box;
};

enum class PageSource { Text, Ocr };

struct PageText {
    int number = 0;  // from 1
    PageSource source = PageSource::Text;
    QString text;
    QList<WordBox> words;  // OCR'd pages only
};

// A stretch of one page's text, the unit of retrieval.
struct TextChunk {
    int page = 0;
    int char_start = 0;  // in the page text
    int char_end = 0;
    QString text;
};

struct DocumentRecord {
    qint64 id = 0;
    QString path;
    QString name;
    QString collection;
    QString kind;  // "pdf", "text" or "image"
    QString sha256;
    qint64 size = 0;
    int page_count = 0;
    int ocr_pages = 0;
    QString status;  // "indexing" until every page is stored, then "ready"
    int chunk_count = 0;
};

// A chunk found for a question, with where it came from.
struct Passage {
    qint64 chunk_id = 0;
    qint64 document_id = 0;
    QString path;
    QString document;  // the file's name
    int page = 0;
    int char_start = 0;
    int char_end = 0;
    QString text;
    double score = 0;  // higher is better: the fused score, or -bm25 / the cosine alone
};

// Which documents a question looks in: everything, or the union of some collections and documents.
struct DocumentScope {
    QStringList collections;
    QList<qint64> documents;
    bool everything() const { return collections.isEmpty() && documents.isEmpty(); }
};

}  // namespace mwb::app

Q_DECLARE_METATYPE(mwb::app::Passage)
