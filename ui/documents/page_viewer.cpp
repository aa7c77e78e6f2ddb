#include "ui/documents/page_viewer.h"

#include <QDesktopServices>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QPainterPath>
#include <QPushButton>
#include <QScrollArea>
#include <QSlider>
#include <QTextBrowser>
#include <QUrl>
#include <QVBoxLayout>

namespace mwb::ui {

PageViewer::PageViewer(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* header = new QHBoxLayout;
    title_ = new QLabel;
    title_->setObjectName("pageTitle");
    title_->setWordWrap(true);
    zoom_ = new QSlider(Qt::Horizontal);
    zoom_->setRange(40, 200);
    zoom_->setValue(100);
    zoom_->setMaximumWidth(120);
    zoom_->setToolTip(tr("Zoom (100 % fits the page's width)"));
    open_file_ = new QPushButton(tr("Open file"));
    open_file_->setToolTip(tr("Open the document in the system's viewer"));
    header->addWidget(title_, 1);
    header->addWidget(zoom_);
    header->addWidget(open_file_);
    layout->addLayout(header);

    scroll_ = new QScrollArea;
    picture_ = new QLabel;
    picture_->setObjectName("pagePicture");
    picture_->setAlignment(Qt::AlignCenter);
    scroll_->setWidget(picture_);
    scroll_->setWidgetResizable(false);
    scroll_->setAlignment(Qt::AlignHCenter);
    layout->addWidget(scroll_, 1);
    text_ = new QTextBrowser;
    text_->setObjectName("pageText");
    layout->addWidget(text_, 1);
    text_->setVisible(false);

    connect(zoom_, &QSlider::valueChanged, this, &PageViewer::redraw);
    connect(open_file_, &QPushButton::clicked, this, [this] { QDesktopServices::openUrl(QUrl::fromLocalFile(source_.path)); });
    title_->setText(tr("Click a citation such as [1] to see its page here."));
    open_file_->setEnabled(false);
}

void PageViewer::show_loading(const app::CitedSource& source) {
    source_ = source;
    title_->setText(tr("[%1] %2, page %3 — loading…").arg(source.number).arg(source.document).arg(source.page));
}

void PageViewer::show_page(const app::CitedSource& source, const app::PageView& view) {
    source_ = source;
    view_ = view;
    open_file_->setEnabled(QFileInfo::exists(source.path));
    title_->setText(tr("[%1] %2, page %3%4")
                        .arg(source.number)
                        .arg(source.document)
                        .arg(source.page)
                        .arg(view.text.source == app::PageSource::Ocr ? tr(" (read by OCR)") : QString()));
    const bool picture = !view.image.isNull();
    scroll_->setVisible(picture);
    zoom_->setVisible(picture);
    text_->setVisible(!picture);
    if (!picture) {
        // A text file: its page with the passage marked.
        const QString& all = view.text.text;
        const int start = std::clamp(source.char_start, 0, int(all.size()));
        const int end = std::clamp(source.char_end, start, int(all.size()));
        text_->setHtml("<pre style='white-space: pre-wrap'>" + all.left(start).toHtmlEscaped() + "<a name='cited'></a><span style='background: #ffe066'>" +
                       all.mid(start, end - start).toHtmlEscaped() + "</span>" + all.mid(end).toHtmlEscaped() + "</pre>");
        text_->scrollToAnchor("cited");
        rendered_ = QImage();
        return;
    }
    redraw();
}

void PageViewer::show_error(const QString& message) {
    title_->setText(tr("The page cannot be shown: %1").arg(message));
    picture_->clear();
    rendered_ = QImage();
}

void PageViewer::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    redraw();
}

void PageViewer::redraw() {
    if (view_.image.isNull()) return;
    // 100 % fits the page to the viewer's width; the slider zooms from there.
    const int width = std::max(200, scroll_->viewport()->width() - 4);
    const double scale = zoom_->value() / 100.0 * width / view_.image.width();
    QImage page = view_.image.convertToFormat(QImage::Format_RGB32)
                      .scaled(view_.image.size() * scale, Qt::KeepAspectRatio, Qt::SmoothTransformation);
    // The characters' boxes merged into one shape, laid on like a highlighter: multiplied, so the ink stays dark.
    QPainterPath cited;
    for (const QPolygonF& fraction : view_.highlight) {
        QPolygonF polygon;
        for (const QPointF& p : fraction) polygon << QPointF(p.x() * page.width(), p.y() * page.height());
        cited.addPolygon(polygon);
        cited.closeSubpath();
    }
    cited.setFillRule(Qt::WindingFill);
    QPainter painter(&page);
    painter.setRenderHint(QPainter::Antialiasing);
    painter.setCompositionMode(QPainter::CompositionMode_Multiply);
    painter.fillPath(cited.simplified(), QColor(255, 226, 60));
    painter.end();
    rendered_ = page;
    picture_->setPixmap(QPixmap::fromImage(page));
    picture_->resize(page.size());
    const QRectF bounds = cited.boundingRect();
    if (!bounds.isEmpty()) scroll_->ensureVisible(int(bounds.center().x()), int(bounds.center().y()), 50, int(scroll_->height() / 3));
}

}  // namespace mwb::ui
