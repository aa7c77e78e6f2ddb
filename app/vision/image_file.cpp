#include "app/vision/image_file.h"

#include <QBuffer>
#include <QFileInfo>
#include <QImage>
#include <QImageReader>
#include <cstring>

#include "engine/vision/image_processor.h"

namespace mwb::app {

namespace {

// Decodes what `reader` reads, bounded in size; errors start with `name`.
Result<RgbImage> decode(QImageReader& reader, const QString& name) {
    auto fail = [&](const QString& why) { return make_error((name + ": " + why).toStdString()); };
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

}  // namespace

Result<RgbImage> read_image_file(const QString& path) {
    const QString name = QFileInfo(path).fileName();
    if (!QFileInfo(path).isFile()) return make_error((name + QStringLiteral(": the image file does not exist")).toStdString());
    if (QFileInfo(path).size() == 0) return make_error((name + QStringLiteral(": the image file is empty (0 bytes)")).toStdString());
    QImageReader reader(path);
    return decode(reader, name);
}

Result<RgbImage> read_image_data(const QByteArray& bytes, const QString& name) {
    if (bytes.isEmpty()) return make_error((name + QStringLiteral(": the image is empty (0 bytes)")).toStdString());
    QBuffer buffer;
    buffer.setData(bytes);
    buffer.open(QIODevice::ReadOnly);
    QImageReader reader(&buffer);
    return decode(reader, name);
}

Result<RgbImage> read_base64_image(std::string_view base64, const std::string& name) {
    auto decoded = QByteArray::fromBase64Encoding(QByteArray::fromRawData(base64.data(), qsizetype(base64.size())),
                                                  QByteArray::AbortOnBase64DecodingErrors);
    if (!decoded) return make_error(name + ": the image data is not valid base64");
    return read_image_data(*decoded, QString::fromStdString(name));
}

}  // namespace mwb::app
