// A page as the viewer shows it: its picture (PDF pages and images; none for text files), its stored text,
// and where a cited stretch of that text lies on the picture, as polygons in fractions of the page's width and
// height. PDF text is located through the PDF's own character boxes, OCR'd text through its word boxes.
#pragma once

#include <QImage>
#include <QList>
#include <QPolygonF>

#include "app/documents/document_store.h"
#include "app/documents/document_types.h"
#include "engine/core/result.h"

namespace mwb::app {

struct PageView {
    QImage image;  // null for text files
    PageText text;
    QList<QPolygonF> highlight;  // one box per stretch of line; empty when nothing is cited or the page has no picture
};

Result<PageView> load_page_view(const DocumentStore& store, qint64 document_id, const QString& path, int page, int char_start,
                                int char_end, int dpi = 110);

}  // namespace mwb::app

Q_DECLARE_METATYPE(mwb::app::PageView)
