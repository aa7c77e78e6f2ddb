// One GPU's memory as a horizontal bar: weights, KV cache and workspace stacked, the rest free, with the
// memory-fraction line and a legend; over capacity the overflow is drawn in red past the end.
#pragma once

#include <QWidget>

namespace mwb::ui {

// Bytes as decimal gigabytes, "688 GB" / "18.7 GB", the way the plan's verdicts count them.
QString gigabytes(double bytes);

class MemoryBar : public QWidget {
    Q_OBJECT
public:
    explicit MemoryBar(QWidget* parent = nullptr);
    // Bytes.
    void set_memory(double capacity, double usable, double weights, double kv_cache, double workspace);
    QSize sizeHint() const override { return {420, 3 * fontMetrics().height() + 12}; }

protected:
    void paintEvent(QPaintEvent* event) override;

private:
    double capacity_ = 0, usable_ = 0, weights_ = 0, kv_ = 0, workspace_ = 0;
};

}  // namespace mwb::ui
