#include "ui/attachment_bar.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QImage>
#include <QImageReader>
#include <QLabel>
#include <QMimeData>
#include <QPushButton>
#include <QToolButton>
#include <QUrl>

namespace mwb::ui {

namespace {

constexpr int kThumbnail = 56;

}  // namespace

bool is_image_file(const QString& path) {
    return QImageReader::supportedImageFormats().contains(QFileInfo(path).suffix().toLower().toLatin1());
}

AttachmentBar::AttachmentBar(QWidget* parent) : QWidget(parent) {
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    attach_ = new QPushButton(tr("Attach image…"));
    attach_->setObjectName("attachImage");
    thumbnails_ = new QHBoxLayout;
    hint_ = new QLabel;
    hint_->setObjectName("attachmentHint");
    hint_->setWordWrap(true);
    layout->addWidget(attach_);
    layout->addLayout(thumbnails_);
    layout->addWidget(hint_, 1);
    connect(attach_, &QPushButton::clicked, this, [this] {
        QStringList patterns;
        for (const QByteArray& format : QImageReader::supportedImageFormats()) patterns << "*." + QString::fromLatin1(format);
        add_files(QFileDialog::getOpenFileNames(this, tr("Attach images"), QString(), tr("Images (%1)").arg(patterns.join(' '))));
    });
    set_vision_available(false, {});
}

void AttachmentBar::set_vision_available(bool available, const QString& model_name) {
    vision_ = available;
    model_name_ = model_name;
    attach_->setEnabled(available);
    attach_->setToolTip(available ? tr("Attach pictures to the message; you can also drop or paste them")
                                  : tr("%1 cannot see images: open a DeepSeek-VL model to ask about pictures").arg(model_name));
    if (!available && !files_.isEmpty()) {
        files_.clear();
        emit changed();
    }
    rebuild();
}

void AttachmentBar::add_files(const QStringList& paths) {
    if (paths.isEmpty()) return;
    if (!vision_) {
        emit statusMessage(tr("%1 cannot see images: open a DeepSeek-VL model to ask about pictures").arg(model_name_));
        return;
    }
    for (const QString& path : paths) {
        if (!is_image_file(path) || QImageReader(path).size().isEmpty()) {
            emit statusMessage(tr("%1 is not an image the app can read").arg(QFileInfo(path).fileName()));
            continue;
        }
        if (!files_.contains(path)) files_ << path;
    }
    rebuild();
    emit changed();
}

bool AttachmentBar::add_mime(const QMimeData* mime) {
    if (!mime) return false;
    QStringList paths;
    for (const QUrl& url : mime->urls())
        if (url.isLocalFile() && is_image_file(url.toLocalFile())) paths << url.toLocalFile();
    if (paths.isEmpty() && mime->hasImage() && pasted_.isValid()) {
        const QString file = pasted_.filePath(QStringLiteral("pasted-%1.png").arg(++pasted_count_));
        if (qvariant_cast<QImage>(mime->imageData()).save(file)) paths << file;
    }
    if (paths.isEmpty()) return false;
    add_files(paths);
    return true;
}

QStringList AttachmentBar::take() {
    const QStringList taken = files_;
    files_.clear();
    rebuild();
    return taken;
}

void AttachmentBar::rebuild() {
    while (QLayoutItem* item = thumbnails_->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    for (const QString& file : files_) {
        auto* thumbnail = new QToolButton;
        thumbnail->setObjectName("attachment");
        thumbnail->setIcon(QIcon(QPixmap::fromImage(QImage(file).scaled(kThumbnail, kThumbnail, Qt::KeepAspectRatio, Qt::SmoothTransformation))));
        thumbnail->setIconSize(QSize(kThumbnail, kThumbnail));
        thumbnail->setToolTip(tr("%1 — click to take it off").arg(QFileInfo(file).fileName()));
        connect(thumbnail, &QToolButton::clicked, this, [this, file] {
            files_.removeAll(file);
            rebuild();
            emit changed();
        });
        thumbnails_->addWidget(thumbnail);
    }
    hint_->setText(vision_ ? (files_.isEmpty() ? tr("Drop or paste pictures to ask about them") : QString())
                           : tr("This model cannot see images"));
}

}  // namespace mwb::ui
