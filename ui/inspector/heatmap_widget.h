// A rows × columns heat map painted in the charts' style (QtCharts has no heat map): labelled axes (only as
// many labels as are legible), a colour scale, optional column-group separators, hover tooltips, a clicked cell
// signal, and a zoom (a fixed cell size, inside a scroll area) for maps too large to read whole.
#pragma once

#include <QStringList>
#include <QWidget>

#include <vector>

namespace mwb::ui {

class HeatmapWidget : public QWidget {
    Q_OBJECT
public:
    explicit HeatmapWidget(QWidget* parent = nullptr);

    void set_data(int rows, int columns, std::vector<double> values, QStringList row_labels, QStringList column_labels);
    void set_title(const QString& title);
    void set_empty_text(const QString& text);  // shown, wrapped, while there is no data
    void set_column_group_size(int size);  // draw a separator every `size` columns (0: none)
    void set_compact(bool compact);         // small multiples: no labels, no legend
    void set_cell_size(int pixels);         // 0: fit the widget; else each cell is this many pixels square

    int rows() const { return rows_; }
    int columns() const { return columns_; }
    const QStringList& row_labels() const { return row_labels_; }
    QString title() const { return title_; }

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

signals:
    void cell_clicked(int row, int column);

protected:
    void paintEvent(QPaintEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;

private:
    QRectF plot_area() const;
    bool cell_at(QPointF point, int& row, int& column) const;

    int rows_ = 0, columns_ = 0, group_size_ = 0;
    bool compact_ = false;
    int cell_size_ = 0;
    std::vector<double> values_;
    double max_value_ = 0;
    QStringList row_labels_, column_labels_;
    QString title_;
    QString empty_text_;
};

}  // namespace mwb::ui
