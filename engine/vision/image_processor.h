// DeepSeek-VL's image preprocessing (DeepseekVLImageProcessor, preprocessor_config.json): the longest side resized
// to the model's size, the short side padded to a square with a background colour, then rescaled and normalised
// into the channel-first float pixels the vision tower takes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/vision/rgb_image.h"

namespace mwb {

struct ImageProcessorConfig {
    int64_t size = 384;      // size.height = size.width: the side of the square the model takes
    int64_t min_size = 14;   // neither side of the resized image is shorter
    int64_t resample = 3;    // PIL's BICUBIC, the only filter supported
    bool do_resize = true, do_pad = true, do_rescale = true, do_normalize = true;
    double rescale_factor = 1.0 / 255.0;
    std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};  // OpenAI CLIP's
    std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};
    // The padding; without the key, the processor takes int(mean · 255) per channel (127 without image_mean).
    std::array<uint8_t, 3> background_color{127, 127, 127};
};

// Parses the text of preprocessor_config.json; `source` names the file in error messages.
Result<ImageProcessorConfig> parse_image_processor_config(const std::string& json_text,
                                                          const std::string& source = "preprocessor_config.json");
Result<ImageProcessorConfig> load_image_processor_config(const std::string& model_directory);

// The largest image accepted: beyond these a decoded image is more likely a mistake than a photo (and a side's
// resampling weights stay small).
constexpr int64_t kMaxImagePixels = 100'000'000;
constexpr int kMaxImageSide = 65536;

// Pixel values [3, size, size], channel-first, as the processor computes them. Fails for an empty image, one
// beyond kMaxImagePixels or kMaxImageSide, a buffer that is not width × height × 3 bytes, or settings (do_resize,
// do_pad off) under which the result would not be size × size.
Result<std::vector<float>> preprocess_image(const RgbImage& image, const ImageProcessorConfig& config);

}  // namespace mwb
