#include "ui/inspector/heatmap_widget.h"

#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

#include <algorithm>
#include <cmath>

namespace mwb::ui {

namespace {

// A perceptually ordered dark-blue → teal → yellow ramp (viridis-like), readable in light and dark themes.
QColor ramp(double t) {
    static const QColor stops[] = {QColor(68, 1, 84), QColor(59, 82, 139), QColor(33, 145, 140), QColor(94, 201, 98),
                                   QColor(253, 231, 37)};
    t = std::clamp(t, 0.0, 1.0) * 4.0;
    const int i = std::min(3, int(t));
    const double f = t - i;
    const QColor& a = stops[i];
    const QColor& b = stops[i + 1];
    return QColor(int(a.red() + f * (b.red() - a.red())), int(a.green() + f * (b.green() - a.green())),
                  int(a.blue() + f * (b.blue() - a.blue())));
}

}  // namespace

HeatmapWidget::HeatmapWidget(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
}

void HeatmapWidget::set_data(int rows, int columns, std::vector<double> values, QStringList row_labels, QStringList column_labels) {
    rows_ = rows;
    columns_ = columns;
    values_ = std::move(values);
    row_labels_ = std::move(row_labels);
    column_labels_ = std::move(column_labels);
    max_value_ = values_.empty() ? 0.0 : *std::max_element(values_.begin(), values_.end());
    updateGeometry();
    update();
}

void HeatmapWidget::set_title(const QString& title) {
    title_ = title;
    update();
}

void HeatmapWidget::set_empty_text(const QString& text) {
    empty_text_ = text;
    update();
}

void HeatmapWidget::set_column_group_size(int size) {
    group_size_ = size;
    update();
}

void HeatmapWidget::set_compact(bool compact) {
    compact_ = compact;
    updateGeometry();
    update();
}

namespace {
constexpr double kLeft = 90, kRight = 70, kBottom = 40;
double top_margin(bool has_title) { return has_title ? 26 : 8; }
}  // namespace

void HeatmapWidget::set_cell_size(int pixels) {
    cell_size_ = pixels;
    updateGeometry();
    update();
}

QSize HeatmapWidget::sizeHint() const {
    if (compact_) return QSize(120, 120);
    if (cell_size_ > 0 && rows_ > 0)
        return QSize(int(kLeft + kRight) + columns_ * cell_size_, int(top_margin(!title_.isEmpty()) + kBottom) + rows_ * cell_size_);
    return QSize(640, 360);
}

QSize HeatmapWidget::minimumSizeHint() const {
    if (compact_) return QSize(60, 60);
    return cell_size_ > 0 && rows_ > 0 ? sizeHint() : QSize(200, 120);
}

QRectF HeatmapWidget::plot_area() const {
    if (compact_) return QRectF(rect()).adjusted(2, title_.isEmpty() ? 2 : 16, -2, -2);
    const double top = top_margin(!title_.isEmpty());
    return QRectF(kLeft, top, std::max(10.0, width() - kLeft - kRight), std::max(10.0, height() - top - kBottom));
}

bool HeatmapWidget::cell_at(QPointF point, int& row, int& column) const {
    const QRectF area = plot_area();
    if (rows_ == 0 || columns_ == 0 || !area.contains(point)) return false;
    column = std::clamp(int((point.x() - area.left()) / area.width() * columns_), 0, columns_ - 1);
    row = std::clamp(int((point.y() - area.top()) / area.height() * rows_), 0, rows_ - 1);
    return true;
}

void HeatmapWidget::paintEvent(QPaintEvent*) {
    QPainter painter(this);
    painter.fillRect(rect(), palette().base());
    const QRectF area = plot_area();
    painter.setPen(palette().text().color());
    if (!title_.isEmpty()) {
        QFont bold = font();
        bold.setBold(!compact_);
        painter.setFont(bold);
        painter.drawText(QRectF(0, 0, width(), area.top()), Qt::AlignCenter, title_);
        painter.setFont(font());
    }
    if (rows_ == 0 || columns_ == 0) {
        painter.drawText(area, Qt::AlignCenter | Qt::TextWordWrap, empty_text_.isEmpty() ? tr("No data yet") : empty_text_);
        return;
    }
    const double cell_w = area.width() / columns_, cell_h = area.height() / rows_;
    for (int r = 0; r < rows_; ++r)
        for (int c = 0; c < columns_; ++c) {
            const double v = values_[size_t(r * columns_ + c)];
            painter.fillRect(QRectF(area.left() + c * cell_w, area.top() + r * cell_h, cell_w + 0.5, cell_h + 0.5),
                             max_value_ > 0 ? ramp(v / max_value_) : ramp(0));
        }
    if (group_size_ > 0 && group_size_ < columns_) {
        painter.setPen(QPen(palette().base().color(), 2));
        for (int c = group_size_; c < columns_; c += group_size_)
            painter.drawLine(QPointF(area.left() + c * cell_w, area.top()), QPointF(area.left() + c * cell_w, area.bottom()));
    }
    if (compact_) return;

    // Labels only where a line of text fits: every n-th row, each shortened to the margin, centred on its row.
    painter.setPen(palette().text().color());
    const QFontMetrics metrics(font());
    const int row_step = std::max(1, int(std::ceil(metrics.height() / cell_h)));
    for (int r = 0; r < rows_ && r < row_labels_.size(); r += row_step) {
        const double middle = area.top() + (r + 0.5) * cell_h;
        painter.drawText(QRectF(0, middle - metrics.height() / 2.0, area.left() - 6, metrics.height()), Qt::AlignRight | Qt::AlignVCenter,
                         metrics.elidedText(row_labels_[r], Qt::ElideRight, int(area.left()) - 8));
    }
    const int label_width = metrics.horizontalAdvance(QStringLiteral("00000"));
    const int column_step = std::max(1, int(std::ceil((label_width + 6) / cell_w)));
    for (int c = 0; c < columns_ && c < column_labels_.size(); c += column_step) {
        const double middle = area.left() + (c + 0.5) * cell_w;
        painter.drawText(QRectF(middle - label_width, area.bottom() + 2, 2.0 * label_width, metrics.height()), Qt::AlignHCenter,
                         metrics.elidedText(column_labels_[c], Qt::ElideRight, label_width + 4));
    }
    // Colour scale.
    const QRectF legend(area.right() + 16, area.top(), 12, area.height());
    for (int y = 0; y < int(legend.height()); ++y)
        painter.fillRect(QRectF(legend.left(), legend.bottom() - y - 1, legend.width(), 1), ramp(y / legend.height()));
    painter.drawText(QRectF(legend.right() + 2, legend.top() - 2, 60, metrics.height()), Qt::AlignLeft,
                     QString::number(max_value_, 'g', 3));
    painter.drawText(QRectF(legend.right() + 2, legend.bottom() - metrics.height(), 60, metrics.height()), Qt::AlignLeft, "0");
}

void HeatmapWidget::mouseMoveEvent(QMouseEvent* event) {
    int row, column;
    if (!cell_at(event->position(), row, column)) return;
    const QString row_label = row < row_labels_.size() ? row_labels_[row] : QString::number(row);
    const QString column_label = column < column_labels_.size() ? column_labels_[column] : QString::number(column);
    QToolTip::showText(event->globalPosition().toPoint(),
                       QStringLiteral("%1, %2: %3").arg(row_label, column_label).arg(values_[size_t(row * columns_ + column)], 0, 'g', 4),
                       this);
}

void HeatmapWidget::mousePressEvent(QMouseEvent* event) {
    int row, column;
    if (cell_at(event->position(), row, column)) emit cell_clicked(row, column);
}

}  // namespace mwb::ui
