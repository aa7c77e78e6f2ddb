#include "app/documents/page_view.h"

#include <QPdfDocument>
#include <QPdfSelection>
#include <algorithm>

#include "app/documents/document_reader.h"

namespace mwb::app {

namespace {

// The boxes of the characters [start, end) of a PDF page, as fractions of the page.
QList<QPolygonF> pdf_text_bounds(const QString& path, int page, int start, int end) {
    QPdfDocument document(nullptr);
    if (document.load(path) != QPdfDocument::Error::None) return {};
    const QSizeF size = document.pagePointSize(page - 1);
    if (size.isEmpty()) return {};
    QList<QPolygonF> polygons;
    for (QPolygonF polygon : document.getSelectionAtIndex(page - 1, start, end - start).bounds()) {
        for (QPointF& point : polygon) point = QPointF(point.x() / size.width(), point.y() / size.height());
        polygons << polygon;
    }
    return polygons;
}

QList<QPolygonF> word_bounds(const QList<WordBox>& words, int start, int end) {
    QList<QPolygonF> polygons;
    for (const WordBox& word : words)
        if (word.char_end > start && word.char_start < end) polygons << QPolygonF(word.box);
    return polygons;
}

// Character or word boxes joined into one rectangle per stretch of a line, as a highlighter marks text: boxes
// that share most of their height and stand less than a few letters apart (not across a column gap) join.
QList<QPolygonF> join_into_lines(const QList<QPolygonF>& boxes) {
    QList<QRectF> lines;
    for (const QPolygonF& polygon : boxes) {
        const QRectF box = polygon.boundingRect();
        bool joined = false;
        for (QRectF& line : lines) {
            const double shared = std::min(line.bottom(), box.bottom()) - std::max(line.top(), box.top());
            const double gap = std::max(box.left() - line.right(), line.left() - box.right());
            const double height = std::max(line.height(), box.height());
            if (shared > 0.5 * std::min(line.height(), box.height()) && gap < 3 * height) {
                line |= box;
                joined = true;
                break;
            }
        }
        if (!joined) lines << box;
    }
    QList<QPolygonF> polygons;
    for (const QRectF& line : lines) polygons << QPolygonF(line);
    return polygons;
}

}  // namespace

Result<PageView> load_page_view(const DocumentStore& store, qint64 document_id, const QString& path, int page, int char_start,
                                int char_end, int dpi) {
    PageView view;
    auto text = store.page(document_id, page);
    if (!text) return text.error();
    view.text = std::move(text.value());
    auto reader = DocumentReader::open(path);
    if (!reader) return reader.error();
    if ((*reader)->kind() == QLatin1String("text")) return view;
    auto image = (*reader)->render_page(page, dpi);
    if (!image) return image.error();
    view.image = std::move(image.value());
    if (char_end <= char_start) return view;
    view.highlight = join_into_lines(view.text.source == PageSource::Ocr ? word_bounds(view.text.words, char_start, char_end)
                                                                         : pdf_text_bounds(path, page, char_start, char_end));
    return view;
}

}  // namespace mwb::app
