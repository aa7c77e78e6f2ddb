// float → half for the emulator's cuda_fp8.h (tests only); the other conversions are the engine's (engine/io/dtype.h).
#include <cmath>

#include <cuda_fp16.h>

namespace mwb_emulator {

unsigned short float_to_half(float value) {
    const unsigned short sign = (__float_as_uint(value) >> 16) & 0x8000;
    if (std::isnan(value)) return sign | 0x7e00;
    const float magnitude = std::fabs(value);
    if (magnitude >= 65520.0f) return sign | 0x7c00;  // rounds to infinity
    if (magnitude < 0x1p-14f) return sign | static_cast<unsigned short>(std::nearbyint(magnitude * 0x1p24f));  // subnormal
    int exponent = 0;
    const float fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction · 2^exponent, fraction in [0.5, 1)
    int biased = exponent - 1 + 15;
    int mantissa = int(std::nearbyint((fraction * 2.0f - 1.0f) * 1024.0f));
    if (mantissa == 1024) mantissa = 0, ++biased;
    if (biased >= 31) return sign | 0x7c00;
    return sign | static_cast<unsigned short>(biased << 10 | mantissa);
}

}  // namespace mwb_emulator
