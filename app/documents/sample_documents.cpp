#include "app/documents/sample_documents.h"

#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>

namespace mwb::app {

namespace {

// Each line is drawn on its own: text laid out across lines in one call comes out of PDF text extraction
// with breaks inside words.
void draw_lines(QPainter& painter, const QStringList& lines, double dots_per_point) {
    QFont font(QStringLiteral("DejaVu Sans"));
    font.setPixelSize(int(12 * dots_per_point));
    painter.setFont(font);
    painter.setPen(Qt::black);
    const double left = 56 * dots_per_point, top = 72 * dots_per_point, step = 18 * dots_per_point;
    for (qsizetype i = 0; i < lines.size(); ++i) painter.drawText(QPointF(left, top + double(i) * step), lines[i]);
}

Status write_pdf(const QString& path, const QList<QStringList>& pages, int scanned_dpi) {
    QPdfWriter writer(path);
    writer.setPageSize(QPageSize(QPageSize::A4));
    writer.setPageMargins(QMarginsF(0, 0, 0, 0));
    constexpr int kResolution = 300;
    writer.setResolution(kResolution);
    QPainter painter;
    if (!painter.begin(&writer)) return make_error("cannot write " + path.toStdString());
    for (qsizetype i = 0; i < pages.size(); ++i) {
        if (i > 0) writer.newPage();
        if (scanned_dpi > 0) painter.drawImage(QRectF(0, 0, writer.width(), writer.height()), draw_page_image(pages[i], scanned_dpi));
        else draw_lines(painter, pages[i], kResolution / 72.0);
    }
    if (!painter.end()) return make_error("cannot finish " + path.toStdString());
    return Status::success();
}

}  // namespace

QImage draw_page_image(const QStringList& lines, int dpi) {
    const QSizeF a4_points = QPageSize(QPageSize::A4).size(QPageSize::Point);
    QImage image((a4_points * (dpi / 72.0)).toSize(), QImage::Format_Grayscale8);
    image.fill(Qt::white);
    image.setDotsPerMeterX(int(dpi / 0.0254));
    image.setDotsPerMeterY(int(dpi / 0.0254));
    QPainter painter(&image);
    draw_lines(painter, lines, dpi / 72.0);
    return image;
}

Status write_text_pdf(const QString& path, const QList<QStringList>& pages) { return write_pdf(path, pages, 0); }

Status write_scanned_pdf(const QString& path, const QList<QStringList>& pages, int dpi) { return write_pdf(path, pages, dpi); }

}  // namespace mwb::app
