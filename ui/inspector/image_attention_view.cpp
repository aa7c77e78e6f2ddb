#include "ui/inspector/image_attention_view.h"

#include <QComboBox>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QPushButton>
#include <QSlider>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

namespace mwb::ui {

namespace {

constexpr int kSide = 448;  // pixels of the square drawn

// Cold to hot: transparent blue through yellow to red, by the share of the strongest patch.
QColor heat(double share, int opacity) {
    const double t = std::clamp(share, 0.0, 1.0);
    const QColor cold(40, 90, 255), warm(255, 220, 0), hot(230, 30, 20);
    auto mix = [](const QColor& a, const QColor& b, double f) {
        return QColor(int(a.red() + (b.red() - a.red()) * f), int(a.green() + (b.green() - a.green()) * f), int(a.blue() + (b.blue() - a.blue()) * f));
    };
    QColor c = t < 0.5 ? mix(cold, warm, t * 2) : mix(warm, hot, (t - 0.5) * 2);
    c.setAlpha(int(opacity * 2.55 * (0.25 + 0.75 * t)));
    return c;
}

}  // namespace

ImageAttentionView::ImageAttentionView(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout;
    image_ = new QComboBox;
    image_->setObjectName("attentionImage");
    token_ = new QComboBox;
    token_->setObjectName("attentionToken");
    token_->setToolTip(tr("The text token whose attention to the image is shown"));
    head_ = new QSpinBox;
    head_->setObjectName("imageAttentionHead");
    head_->setRange(-1, 0);
    head_->setSpecialValueText(tr("mean of heads"));
    head_->setPrefix(tr("head "));
    head_->setValue(-1);
    opacity_ = new QSlider(Qt::Horizontal);
    opacity_->setObjectName("attentionOpacity");
    opacity_->setRange(0, 100);
    opacity_->setValue(70);
    opacity_->setMaximumWidth(140);
    auto* save = new QPushButton(tr("Export PNG…"));
    bar->addWidget(new QLabel(tr("Image")));
    bar->addWidget(image_);
    bar->addWidget(new QLabel(tr("Token")));
    bar->addWidget(token_, 1);
    bar->addWidget(head_);
    bar->addWidget(new QLabel(tr("Opacity")));
    bar->addWidget(opacity_);
    bar->addWidget(save);
    layout->addLayout(bar);
    picture_ = new QLabel;
    picture_->setObjectName("attentionOverlay");
    picture_->setAlignment(Qt::AlignCenter);
    layout->addWidget(picture_, 1);
    caption_ = new QLabel;
    caption_->setWordWrap(true);
    layout->addWidget(caption_);
    for (QComboBox* box : {image_, token_}) connect(box, &QComboBox::currentIndexChanged, this, &ImageAttentionView::redraw);
    connect(head_, &QSpinBox::valueChanged, this, &ImageAttentionView::redraw);
    connect(opacity_, &QSlider::valueChanged, this, &ImageAttentionView::redraw);
    connect(save, &QPushButton::clicked, this, &ImageAttentionView::exportRequested);
}

void ImageAttentionView::show_snapshot(const app::InspectorSnapshot& snapshot, qint64 layer) {
    const bool same_tokens = snapshot.generation == snapshot_.generation && token_->count() > 0;
    snapshot_ = snapshot;
    layer_ = layer;
    const auto captured = snapshot_.attention.find(layer);
    head_->setMaximum(captured == snapshot_.attention.end() ? -1 : int(captured->second.heads) - 1);
    if (!same_tokens) {
        const QSignalBlocker image_block(image_), token_block(token_);
        image_->clear();
        for (const app::InspectedImage& image : snapshot_.images) image_->addItem(QFileInfo(image.file).fileName());
        token_->clear();
        // The tokens after the first image can look at it; the last one of the prompt by default.
        const int64_t first = snapshot_.images.empty() ? 0 : snapshot_.images.front().positions.back() + 1;
        for (int64_t p = first; p < int64_t(snapshot_.token_texts.size()); ++p)
            token_->addItem(QStringLiteral("%1: %2").arg(p).arg(snapshot_.token_texts[size_t(p)].simplified()), qint64(p));
        token_->setCurrentIndex(token_->findData(qint64(snapshot_.prompt_tokens - 1)));
    }
    redraw();
}

void ImageAttentionView::select_token(int position) { token_->setCurrentIndex(token_->findData(qint64(position))); }

void ImageAttentionView::redraw() {
    overlay_ = QImage();
    if (snapshot_.images.empty()) {
        picture_->clear();
        caption_->setText(tr("No image in this conversation: attach one in Chat to a DeepSeek-VL model, then use Inspect on the reply."));
        return;
    }
    const app::InspectedImage& image = snapshot_.images[size_t(std::max(0, image_->currentIndex()))];
    const QImage source(image.file);
    if (source.isNull()) {
        caption_->setText(tr("The image %1 cannot be read any more.").arg(image.file));
        return;
    }
    // The picture as the model saw it: the longest side fitted to the square, centred on grey.
    overlay_ = QImage(kSide, kSide, QImage::Format_RGB32);
    overlay_.fill(QColor(127, 127, 127));
    QPainter painter(&overlay_);
    const QImage fitted = source.scaled(kSide, kSide, Qt::KeepAspectRatio, Qt::SmoothTransformation);
    painter.drawImage((kSide - fitted.width()) / 2, (kSide - fitted.height()) / 2, fitted);
    const qint64 position = token_->currentData().toLongLong();
    const std::vector<float> weights = app::image_attention(snapshot_, layer_, position, image, head_->value());
    const int grid = int(std::lround(std::sqrt(double(image.positions.size()))));
    if (weights.empty() || grid * grid != int(image.positions.size())) {
        caption_->setText(tr("Layer %1 has no attention captured for this token: choose the layer in Attention heads, or Inspect the "
                             "message again.").arg(layer_));
    } else {
        const float strongest = *std::max_element(weights.begin(), weights.end());
        const double cell = double(kSide) / grid;
        painter.setPen(Qt::NoPen);
        for (int i = 0; i < grid * grid; ++i) {
            painter.setBrush(heat(strongest > 0 ? weights[size_t(i)] / strongest : 0, opacity_->value()));
            painter.drawRect(QRectF((i % grid) * cell, (i / grid) * cell, cell, cell));
        }
        double total = 0;
        for (float w : weights) total += w;
        caption_->setText(tr("Layer %1, %2: token %3 gives %4% of its attention to the image's %5 patches (the strongest patch %6%).")
                              .arg(layer_)
                              .arg(head_->value() < 0 ? tr("mean of the heads") : tr("head %1").arg(head_->value()))
                              .arg(position)
                              .arg(100 * total, 0, 'f', 1)
                              .arg(weights.size())
                              .arg(100 * strongest, 0, 'f', 1));
    }
    painter.end();
    picture_->setPixmap(QPixmap::fromImage(overlay_));
}

}  // namespace mwb::ui
