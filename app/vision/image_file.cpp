#include "app/vision/image_file.h"

#include <QFileInfo>
#include <QImage>
#include <QImageReader>
#include <cstring>

#include "engine/vision/image_processor.h"

namespace mwb::app {

Result<RgbImage> read_image_file(const QString& path) {
    const QString name = QFileInfo(path).fileName();
    auto fail = [&](const QString& why) { return make_error((name + ": " + why).toStdString()); };
    if (!QFileInfo(path).isFile()) return fail(QStringLiteral("the image file does not exist"));
    if (QFileInfo(path).size() == 0) return fail(QStringLiteral("the image file is empty (0 bytes)"));
    QImageReader reader(path);
    if (!reader.canRead()) return fail(QStringLiteral("not an image that can be read (%1)").arg(reader.errorString()));
    const QSize size = reader.size();
    if (size.isValid() && (qint64(size.width()) * size.height() > kMaxImagePixels || size.width() > kMaxImageSide || size.height() > kMaxImageSide))
        return fail(QStringLiteral("the image is %1×%2 pixels, more than the %3 megapixels an image may have")
                        .arg(size.width()).arg(size.height()).arg(kMaxImagePixels / 1'000'000));
    reader.setAllocationLimit(int(kMaxImagePixels * 4 >> 20) + 1);
    const QImage image = reader.read();
    if (image.isNull()) return fail(QStringLiteral("the image is damaged or truncated (%1)").arg(reader.errorString()));
    // Alpha is dropped, as the Hugging Face processors' convert("RGB") drops it.
    const QImage rgb = image.convertToFormat(QImage::Format_RGB888);
    RgbImage out;
    out.width = rgb.width();
    out.height = rgb.height();
    out.rgb.resize(size_t(out.width) * size_t(out.height) * 3);
    // Qt pads each scan line to 4 bytes; the engine's rows are packed.
    for (int y = 0; y < out.height; ++y) std::memcpy(out.rgb.data() + size_t(y) * size_t(out.width) * 3, rgb.constScanLine(y), size_t(out.width) * 3);
    return out;
}

}  // namespace mwb::app
