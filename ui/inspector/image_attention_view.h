// Where the model looks in an image: for a chosen text token, layer and head (or the mean of the heads), the
// attention it pays to each image patch, drawn as a heat map over the picture as the model saw it (the longest
// side fitted to a square, padded), with opacity control and PNG export.
#pragma once

#include <QImage>
#include <QWidget>

#include "app/services/inspector_feed.h"

class QComboBox;
class QLabel;
class QSlider;
class QSpinBox;

namespace mwb::ui {

class ImageAttentionView : public QWidget {
    Q_OBJECT
public:
    explicit ImageAttentionView(QWidget* parent = nullptr);

    // Shows `snapshot`'s images with the attention captured for `layer`.
    void show_snapshot(const app::InspectorSnapshot& snapshot, qint64 layer);
    void select_token(int position);
    QImage overlay() const { return overlay_; }
    bool export_png(const QString& path) const { return !overlay_.isNull() && overlay_.save(path); }

signals:
    void exportRequested();

private:
    void redraw();

    app::InspectorSnapshot snapshot_;
    qint64 layer_ = 0;
    QImage overlay_;
    QComboBox* image_;
    QComboBox* token_;
    QSpinBox* head_;
    QSlider* opacity_;
    QLabel* picture_;
    QLabel* caption_;
};

}  // namespace mwb::ui
