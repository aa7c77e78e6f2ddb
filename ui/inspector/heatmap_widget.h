// A rows × columns heat map painted in the charts' style (QtCharts has no heat map): labelled axes, a colour
// scale, optional column-group separators, hover tooltips and a clicked cell signal.
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
    void set_column_group_size(int size);  // draw a separator every `size` columns (0: none)
    void set_compact(bool compact);         // small multiples: no labels, no legend

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
    std::vector<double> values_;
    double max_value_ = 0;
    QStringList row_labels_, column_labels_;
    QString title_;
};

}  // namespace mwb::ui
