// Image files (PNG, JPEG, WebP, TIFF, BMP, …) decoded by Qt into the engine's RGB image, for DeepSeek-VL in the
// CLI and the app. Decoding is bounded: a file that claims absurd dimensions is refused before it is read.
#pragma once

#include <QString>

#include "engine/core/result.h"
#include "engine/vision/rgb_image.h"

namespace mwb::app {

Result<RgbImage> read_image_file(const QString& path);

}  // namespace mwb::app
