// Documents made on the spot, with known text on known pages: for `mwb bench-docs` and the tests. A text PDF
// has a text layer; a scanned one holds each page only as a picture, as a scanner writes it. Both need a
// QGuiApplication (fonts).
#pragma once

#include <QImage>
#include <QList>
#include <QString>
#include <QStringList>

#include "engine/core/result.h"

namespace mwb::app {

// Each entry of `pages` is one page; each string one line of 12-point text.
Status write_text_pdf(const QString& path, const QList<QStringList>& pages);
// The same pages drawn as `dpi` images, and those images put into the PDF, one per page.
Status write_scanned_pdf(const QString& path, const QList<QStringList>& pages, int dpi = 200);
// One page drawn as a picture, black on white, as on paper of A4 size at `dpi`.
QImage draw_page_image(const QStringList& lines, int dpi);

}  // namespace mwb::app
