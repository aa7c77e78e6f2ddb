#include "engine/model/blocks/rope.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mwb {

namespace {

double yarn_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

double yarn_correction_dim(double rotations, int64_t dim, double base, double max_positions) {
    return (double(dim) * std::log(max_positions / (rotations * 2.0 * M_PI))) / (2.0 * std::log(base));
}

}  // namespace

RopeTable make_rope_table(const RopeConfig& config, int64_t rotary_dim, RopeLayout layout,
                          int64_t max_position_embeddings) {
    RopeTable table;
    table.layout = layout;
    table.rotary_dim = rotary_dim;
    const int64_t half = rotary_dim / 2;
    // transformers computes base ** (2i / dim) in float32; do the same so the angles agree bit for bit.
    std::vector<float> position_frequency(static_cast<size_t>(half)), base_frequency(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        const float exponent = float(2 * i) / float(rotary_dim);
        position_frequency[size_t(i)] = std::pow(float(config.theta), exponent);
        base_frequency[size_t(i)] = 1.0f / position_frequency[size_t(i)];
    }
    table.inverse_frequency = base_frequency;
    const float factor = float(config.factor);

    switch (config.scaling) {
        case RopeScaling::None:
            break;
        case RopeScaling::Linear:
            for (auto& f : table.inverse_frequency) f /= factor;
            break;
        case RopeScaling::Yarn: {
            // DeepSeek stores the extended context in max_position_embeddings; transformers then takes the
            // ratio to the original context as the factor.
            double yarn_factor = config.factor;
            const double original = double(config.original_max_position_embeddings);
            if (config.original_max_position_embeddings > 0) yarn_factor = double(max_position_embeddings) / original;
            double low = std::floor(yarn_correction_dim(config.beta_fast, rotary_dim, config.theta, original));
            double high = std::ceil(yarn_correction_dim(config.beta_slow, rotary_dim, config.theta, original));
            low = std::max(low, 0.0);
            high = std::min(high, double(rotary_dim - 1));
            if (low == high) high += 0.001;
            for (int64_t i = 0; i < half; ++i) {
                const float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
                const float extrapolation_weight = 1.0f - ramp;
                const float extrapolated = base_frequency[size_t(i)];
                const float interpolated = 1.0f / (float(yarn_factor) * position_frequency[size_t(i)]);
                table.inverse_frequency[size_t(i)] =
                    interpolated * (1.0f - extrapolation_weight) + extrapolated * extrapolation_weight;
            }
            if (config.mscale != 0.0 && config.mscale_all_dim != 0.0)
                table.attention_factor =
                    float(yarn_mscale(yarn_factor, config.mscale) / yarn_mscale(yarn_factor, config.mscale_all_dim));
            else
                table.attention_factor = float(yarn_mscale(yarn_factor, 1.0));
            break;
        }
        case RopeScaling::Llama3: {
            const double original = double(config.original_max_position_embeddings);
            const double low_wavelength = original / config.low_freq_factor;
            const double high_wavelength = original / config.high_freq_factor;
            for (auto& f : table.inverse_frequency) {
                const double wavelength = 2.0 * M_PI / double(f);
                if (wavelength > low_wavelength) {
                    f = f / factor;
                } else if (wavelength >= high_wavelength) {
                    const float smooth = float((original / wavelength - config.low_freq_factor) /
                                               (config.high_freq_factor - config.low_freq_factor));
                    f = (1.0f - smooth) * f / factor + smooth * f;
                }
            }
            break;
        }
    }
    return table;
}

void RopeTable::apply(float* data, int64_t heads, int64_t head_stride, int64_t position) const {
    rotate(data, heads, head_stride, position, 1.0f);
}

void RopeTable::apply_transposed(float* data, int64_t heads, int64_t head_stride, int64_t position) const {
    rotate(data, heads, head_stride, position, -1.0f);
}

void RopeTable::rotate(float* data, int64_t heads, int64_t head_stride, int64_t position, float direction) const {
    const int64_t half = rotary_dim / 2;
    for (int64_t i = 0; i < half; ++i) {
        const float angle = float(position) * inverse_frequency[size_t(i)];
        const float c = std::cos(angle) * attention_factor;
        const float s = direction * std::sin(angle) * attention_factor;
        for (int64_t h = 0; h < heads; ++h) {
            float* head = data + h * head_stride;
            // Interleaved pairs (x[2i], x[2i+1]) — the layout DeepSeek's complex-number rope uses.
            float& a = layout == RopeLayout::NeoX ? head[i] : head[2 * i];
            float& b = layout == RopeLayout::NeoX ? head[i + half] : head[2 * i + 1];
            const float x = a, y = b;
            a = x * c - y * s;
            b = y * c + x * s;
        }
    }
}

}  // namespace mwb
