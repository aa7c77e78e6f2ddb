// Image resizing exactly as Pillow's Image.resize does it with BICUBIC (resample=3) on 8-bit images, which is
// what the Hugging Face image processors of DeepSeek-VL feed the vision tower.
#pragma once

#include "engine/vision/rgb_image.h"

namespace mwb {

// A cubic filter with a = -0.5, widened by the scale when shrinking (antialiasing); a horizontal pass, then a
// vertical one, each skipped when that side keeps its size, with fixed-point weights, rounding and clipping to
// 8 bits after each pass as Pillow does. `image` must be valid and the new sides positive.
RgbImage resize_bicubic(const RgbImage& image, int width, int height);

}  // namespace mwb
