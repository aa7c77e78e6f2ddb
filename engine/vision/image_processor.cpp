#include "engine/vision/image_processor.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/core/text_file.h"
#include "engine/vision/resample.h"

namespace mwb {

namespace {

using nlohmann::json;

// Reads the keys of preprocessor_config.json, keeping the first problem (named with the file and key).
class ProcessorKeys {
public:
    ProcessorKeys(const json& root, std::string source) : root_(root), source_(std::move(source)) {}

    bool has(const char* key) const { return root_.contains(key) && !root_[key].is_null(); }
    bool boolean(const char* key, bool fallback) {
        if (!has(key)) return fallback;
        if (root_[key].is_boolean()) return root_[key].get<bool>();
        fail(key, "must be true or false");
        return fallback;
    }
    int64_t integer(const json& value, const std::string& key, int64_t low, int64_t high) {
        if (value.is_number_integer() && value.get<int64_t>() >= low && value.get<int64_t>() <= high) return value.get<int64_t>();
        fail(key, "must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
        return low;
    }
    int64_t integer(const char* key, int64_t fallback, int64_t low, int64_t high) {
        return has(key) ? integer(root_[key], key, low, high) : fallback;
    }
    double number(const char* key, double fallback) {
        if (!has(key)) return fallback;
        if (root_[key].is_number() && std::isfinite(root_[key].get<double>())) return root_[key].get<double>();
        fail(key, "must be a finite number");
        return fallback;
    }
    // One number per channel, or a single number for all three, as the processors accept.
    std::array<double, 3> per_channel(const char* key, std::array<double, 3> fallback) {
        if (!has(key)) return fallback;
        const json& value = root_[key];
        const bool single = value.is_number();
        if (!single && (!value.is_array() || value.size() != 3)) {
            fail(key, "must be a number or a list of 3 numbers (one per channel)");
            return fallback;
        }
        std::array<double, 3> result{};
        for (size_t c = 0; c < 3; ++c) {
            const json& item = single ? value : value[c];
            if (!item.is_number() || !std::isfinite(item.get<double>())) {
                fail(key, "must hold finite numbers");
                return fallback;
            }
            result[c] = item.get<double>();
        }
        return result;
    }
    std::array<uint8_t, 3> color(const char* key, std::array<uint8_t, 3> fallback) {
        if (!has(key)) return fallback;
        const json& value = root_[key];
        if (!value.is_array() || value.size() != 3) {
            fail(key, "must be a list of 3 integers from 0 to 255");
            return fallback;
        }
        for (size_t c = 0; c < 3; ++c) fallback[c] = uint8_t(integer(value[c], key, 0, 255));
        return fallback;
    }
    void fail(const std::string& key, const std::string& problem) {
        if (!error_) error_ = make_error(source_ + ": key " + key + " " + problem);
    }
    const std::optional<Error>& error() const { return error_; }

private:
    const json& root_;
    std::string source_;
    std::optional<Error> error_;
};

}  // namespace

Result<ImageProcessorConfig> parse_image_processor_config(const std::string& json_text, const std::string& source) {
    json root;
    try {
        root = json::parse(json_text);
    } catch (const json::exception& e) {
        return make_error(source + " is not valid JSON (" + e.what() + ")");
    }
    if (!root.is_object()) return make_error(source + " is not a JSON object");
    ProcessorKeys keys(root, source);
    ImageProcessorConfig config;
    if (keys.has("size")) {
        const json& size = root["size"];
        if (!size.is_object() || !size.contains("height") || !size.contains("width")) {
            keys.fail("size", "must be an object with height and width");
        } else {
            config.size = keys.integer(size["height"], "size.height", 1, 8192);
            const int64_t width = keys.integer(size["width"], "size.width", 1, 8192);
            if (!keys.error() && width != config.size)
                keys.fail("size", "must be square (height " + std::to_string(config.size) + ", width " + std::to_string(width) + ")");
        }
    }
    config.min_size = keys.integer("min_size", config.min_size, 0, config.size);
    config.resample = keys.integer("resample", config.resample, 0, 5);
    if (!keys.error() && config.resample != 3)
        keys.fail("resample", "is " + std::to_string(config.resample) + "; only 3 (bicubic) is supported");
    config.do_resize = keys.boolean("do_resize", config.do_resize);
    config.do_pad = keys.boolean("do_pad", config.do_pad);
    config.do_rescale = keys.boolean("do_rescale", config.do_rescale);
    config.do_normalize = keys.boolean("do_normalize", config.do_normalize);
    config.rescale_factor = keys.number("rescale_factor", config.rescale_factor);
    if (!keys.error() && config.rescale_factor <= 0) keys.fail("rescale_factor", "must be positive");
    config.image_mean = keys.per_channel("image_mean", config.image_mean);
    config.image_std = keys.per_channel("image_std", config.image_std);
    if (!keys.error() && std::any_of(config.image_std.begin(), config.image_std.end(), [](double s) { return !(s > 0); }))
        keys.fail("image_std", "must be positive");
    if (keys.has("image_mean") && !keys.error())
        for (size_t c = 0; c < 3; ++c) config.background_color[c] = uint8_t(std::clamp(config.image_mean[c] * 255, 0.0, 255.0));
    config.background_color = keys.color("background_color", config.background_color);
    if (keys.error()) return *keys.error();
    return config;
}

Result<ImageProcessorConfig> load_image_processor_config(const std::string& model_directory) {
    const auto path = std::filesystem::path(model_directory) / "preprocessor_config.json";
    if (!std::filesystem::exists(path))
        return make_error("preprocessor_config.json missing in " + model_directory + ": images need the model's image processor settings");
    auto text = read_text_file(path.string());
    if (!text) return text.error();
    return parse_image_processor_config(*text, "preprocessor_config.json");
}

namespace {

Status check_image(const RgbImage& image) {
    const std::string dims = std::to_string(image.width) + "×" + std::to_string(image.height);
    if (image.width <= 0 || image.height <= 0) return make_error("the image is " + dims + " pixels: it has no pixels");
    if (int64_t(image.width) * int64_t(image.height) > kMaxImagePixels)
        return make_error("the image is " + dims + " pixels, more than the " + std::to_string(kMaxImagePixels / 1'000'000) +
                          " megapixels accepted; scale it down first");
    if (std::max(image.width, image.height) > kMaxImageSide)
        return make_error("the image is " + dims + " pixels; sides longer than " + std::to_string(kMaxImageSide) +
                          " pixels are not accepted, crop or scale it first");
    const size_t expected = size_t(image.width) * size_t(image.height) * 3;
    if (image.rgb.size() != expected)
        return make_error("the image buffer holds " + std::to_string(image.rgb.size()) + " bytes; a " + dims + " RGB image needs " +
                          std::to_string(expected));
    return {};
}

// The processor's new sides: the longest becomes `size`, the other keeps the aspect (Python's round, half to
// even), neither below min_size.
Result<RgbImage> resize_longest_side(const RgbImage& image, const ImageProcessorConfig& config) {
    const double scale = double(config.size) / double(std::max(image.width, image.height));
    const int height = int(std::max<double>(std::nearbyint(image.height * scale), double(config.min_size)));
    const int width = int(std::max<double>(std::nearbyint(image.width * scale), double(config.min_size)));
    if (width < 1 || height < 1)
        return make_error("the image is " + std::to_string(image.width) + "×" + std::to_string(image.height) +
                          " pixels, too thin to scale to " + std::to_string(config.size) + " pixels with min_size " +
                          std::to_string(config.min_size) + ": crop or pad it first");
    return resize_bicubic(image, width, height);
}

// Centred on a square of the background colour; the extra row or column, when the difference is odd, at the end.
RgbImage pad_to_square(const RgbImage& image, const std::array<uint8_t, 3>& background) {
    const int side = std::max(image.width, image.height);
    RgbImage square{side, side, std::vector<uint8_t>(size_t(side) * size_t(side) * 3)};
    for (size_t i = 0; i < square.rgb.size(); i += 3) std::copy(background.begin(), background.end(), square.rgb.begin() + long(i));
    const int top = (side - image.height) / 2, left = (side - image.width) / 2;
    const size_t row_bytes = size_t(image.width) * 3;
    for (int y = 0; y < image.height; ++y)
        std::copy_n(image.rgb.begin() + long(size_t(y) * row_bytes), row_bytes,
                    square.rgb.begin() + long((size_t(top + y) * size_t(side) + size_t(left)) * 3));
    return square;
}

}  // namespace

Result<std::vector<float>> preprocess_image(const RgbImage& image, const ImageProcessorConfig& config) {
    MWB_TRY(check_image(image));
    RgbImage processed = image;
    if (config.do_resize) {
        auto resized = resize_longest_side(image, config);
        if (!resized) return resized.error();
        processed = std::move(*resized);
    }
    if (config.do_pad && processed.width != processed.height) processed = pad_to_square(processed, config.background_color);
    if (processed.width != config.size || processed.height != config.size)
        return make_error("the image becomes " + std::to_string(processed.width) + "×" + std::to_string(processed.height) +
                          " pixels, not the " + std::to_string(config.size) + "×" + std::to_string(config.size) +
                          " the model takes (preprocessor_config.json turns do_resize or do_pad off)");

    const size_t plane = size_t(config.size) * size_t(config.size);
    std::vector<float> pixels(3 * plane);
    for (size_t c = 0; c < 3; ++c)
        for (size_t i = 0; i < plane; ++i) {
            double value = processed.rgb[i * 3 + c];
            if (config.do_rescale) value *= config.rescale_factor;
            if (config.do_normalize) value = (value - config.image_mean[c]) / config.image_std[c];
            pixels[c * plane + i] = float(value);
        }
    return pixels;
}

}  // namespace mwb
