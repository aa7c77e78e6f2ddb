// Image files (PNG, JPEG, WebP, TIFF, BMP, …) decoded by Qt into the engine's RGB image, for DeepSeek-VL in the
// CLI and the app. Decoding is bounded: a file that claims absurd dimensions is refused before it is read.
#pragma once

#include <QByteArray>
#include <QString>
#include <string>
#include <string_view>

#include "engine/core/result.h"
#include "engine/vision/rgb_image.h"

namespace mwb::app {

Result<RgbImage> read_image_file(const QString& path);
// The same for an image held in memory; `name` starts the error messages.
Result<RgbImage> read_image_data(const QByteArray& bytes, const QString& name);
// An image sent as base64 text (an OpenAI data URL's payload): the server's ServedModelOptions::decode_image.
Result<RgbImage> read_base64_image(std::string_view base64, const std::string& name);

}  // namespace mwb::app
