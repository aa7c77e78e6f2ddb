#include "ui/memory_bar.h"

#include <QPainter>

namespace mwb::ui {

QString gigabytes(double bytes) { return QString::number(bytes / 1e9, 'f', bytes >= 100e9 ? 0 : 1) + " GB"; }

MemoryBar::MemoryBar(QWidget* parent) : QWidget(parent) { setMinimumHeight(sizeHint().height()); }

void MemoryBar::set_memory(double capacity, double usable, double weights, double kv_cache, double workspace) {
    capacity_ = capacity;
    usable_ = usable;
    weights_ = weights;
    kv_ = kv_cache;
    workspace_ = workspace;
    setToolTip(tr("Per GPU: %1 weights, %2 KV cache, %3 workspace of %4 (%5 usable at the memory fraction)")
                   .arg(gigabytes(weights), gigabytes(kv_cache), gigabytes(workspace), gigabytes(capacity), gigabytes(usable)));
    update();
}

void MemoryBar::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const int line = fontMetrics().height();
    const QRectF bar(1, 1, width() - 2, line + 6);
    p.setPen(palette().color(QPalette::Mid));
    p.setBrush(palette().color(QPalette::Base));
    p.drawRect(bar);
    if (capacity_ <= 0) return;
    const double total = weights_ + kv_ + workspace_;
    // Past capacity the bar's scale grows so that the overflow shows.
    const double scale = bar.width() / std::max(capacity_, total);
    const struct Part {
        double bytes;
        QColor color;
        QString name;
    } parts[] = {{weights_, QColor(0x4c, 0x72, 0xb0), tr("weights")},
                 {kv_, QColor(0x55, 0xa8, 0x68), tr("KV cache")},
                 {workspace_, QColor(0xdd, 0x84, 0x52), tr("workspace")}};
    double x = bar.left();
    for (const Part& part : parts) {
        const QRectF piece(x, bar.top(), part.bytes * scale, bar.height());
        p.fillRect(piece, part.color);
        x += piece.width();
    }
    if (total > usable_) p.fillRect(QRectF(bar.left() + usable_ * scale, bar.top(), (total - usable_) * scale, bar.height() / 3), Qt::red);
    p.setPen(QPen(palette().color(QPalette::Text), 1, Qt::DashLine));
    const double limit = bar.left() + usable_ * scale;
    p.drawLine(QPointF(limit, bar.top() - 1), QPointF(limit, bar.bottom() + 1));
    // Legend.
    p.setPen(palette().color(QPalette::Text));
    double lx = bar.left(), ly = bar.bottom() + 4;
    // Entries move to a second line when the first is full.
    auto place = [&](double entry_width) {
        if (lx > bar.left() && lx + entry_width > bar.right()) {
            lx = bar.left();
            ly += line;
        }
    };
    for (const Part& part : parts) {
        const QString text = part.name + " " + gigabytes(part.bytes);
        place(line + fontMetrics().horizontalAdvance(text));
        p.fillRect(QRectF(lx, ly + 3, line - 6, line - 6), part.color);
        p.drawText(QPointF(lx + line, ly + line - 3), text);
        lx += line + fontMetrics().horizontalAdvance(text) + 14;
    }
    const QString free = total <= usable_ ? tr("free %1 of %2").arg(gigabytes(usable_ - total), gigabytes(capacity_))
                                          : tr("%1 over the %2 usable").arg(gigabytes(total - usable_), gigabytes(usable_));
    place(fontMetrics().horizontalAdvance(free));
    p.drawText(QPointF(lx, ly + line - 3), free);
}

}  // namespace mwb::ui
