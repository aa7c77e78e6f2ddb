#include "engine/vision/resample.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace mwb {

namespace {

// Pillow keeps 22 fractional bits: 8 for the result, 2 for the overshoot of a filter with negative lobes.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kBicubicSupport = 2.0;

double bicubic(double x) {
    constexpr double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

// For each output pixel along one side: the first input pixel it reads, how many, and their fixed-point weights.
struct Taps {
    int stride = 0;  // weights per output pixel
    std::vector<int> first, count;
    std::vector<int32_t> weights;  // [out_size, stride]
};

Taps compute_taps(int in_size, int out_size) {
    const double scale = double(in_size) / double(out_size);
    const double filter_scale = std::max(scale, 1.0);
    const double support = kBicubicSupport * filter_scale;
    const double inverse_filter_scale = 1.0 / filter_scale;
    Taps taps;
    taps.stride = int(std::ceil(support)) * 2 + 1;
    taps.first.resize(size_t(out_size));
    taps.count.resize(size_t(out_size));
    taps.weights.assign(size_t(out_size) * size_t(taps.stride), 0);
    std::vector<double> k(size_t(taps.stride));
    for (int out = 0; out < out_size; ++out) {
        const double center = (out + 0.5) * scale;
        // Truncation toward zero, as Pillow's (int) casts round these.
        const int first = std::max(int(center - support + 0.5), 0);
        const int count = std::min(int(center + support + 0.5), in_size) - first;
        double total = 0.0;
        for (int i = 0; i < count; ++i) total += k[size_t(i)] = bicubic((i + first - center + 0.5) * inverse_filter_scale);
        int32_t* fixed = taps.weights.data() + size_t(out) * size_t(taps.stride);
        for (int i = 0; i < count; ++i) {
            const double w = (total != 0.0 ? k[size_t(i)] / total : k[size_t(i)]) * double(1 << kPrecisionBits);
            fixed[i] = int32_t(w < 0 ? w - 0.5 : w + 0.5);
        }
        taps.first[size_t(out)] = first;
        taps.count[size_t(out)] = count;
    }
    return taps;
}

uint8_t round_and_clip(int64_t sum) {
    return uint8_t(std::clamp<int64_t>(sum >> kPrecisionBits, 0, 255));
}

RgbImage resize_horizontally(const RgbImage& in, int width) {
    const Taps taps = compute_taps(in.width, width);
    RgbImage out{width, in.height, std::vector<uint8_t>(size_t(width) * size_t(in.height) * 3)};
    for (int y = 0; y < in.height; ++y) {
        const uint8_t* row = in.rgb.data() + size_t(y) * size_t(in.width) * 3;
        uint8_t* target = out.rgb.data() + size_t(y) * size_t(width) * 3;
        for (int x = 0; x < width; ++x) {
            const int32_t* w = taps.weights.data() + size_t(x) * size_t(taps.stride);
            const uint8_t* source = row + size_t(taps.first[size_t(x)]) * 3;
            for (int c = 0; c < 3; ++c) {
                int64_t sum = int64_t(1) << (kPrecisionBits - 1);
                for (int i = 0; i < taps.count[size_t(x)]; ++i) sum += int64_t(source[size_t(i) * 3 + size_t(c)]) * w[i];
                target[size_t(x) * 3 + size_t(c)] = round_and_clip(sum);
            }
        }
    }
    return out;
}

RgbImage resize_vertically(const RgbImage& in, int height) {
    const Taps taps = compute_taps(in.height, height);
    const size_t row_bytes = size_t(in.width) * 3;
    RgbImage out{in.width, height, std::vector<uint8_t>(row_bytes * size_t(height))};
    for (int y = 0; y < height; ++y) {
        const int32_t* w = taps.weights.data() + size_t(y) * size_t(taps.stride);
        const uint8_t* source = in.rgb.data() + size_t(taps.first[size_t(y)]) * row_bytes;
        uint8_t* target = out.rgb.data() + size_t(y) * row_bytes;
        for (size_t byte = 0; byte < row_bytes; ++byte) {
            int64_t sum = int64_t(1) << (kPrecisionBits - 1);
            for (int i = 0; i < taps.count[size_t(y)]; ++i) sum += int64_t(source[size_t(i) * row_bytes + byte]) * w[i];
            target[byte] = round_and_clip(sum);
        }
    }
    return out;
}

}  // namespace

RgbImage resize_bicubic(const RgbImage& image, int width, int height) {
    RgbImage result = image.width != width ? resize_horizontally(image, width) : image;
    if (result.height != height) result = resize_vertically(result, height);
    return result;
}

}  // namespace mwb
