#include "engine/io/dtype.h"

#include <cmath>
#include <cstdint>

namespace mwb {

std::optional<DType> dtype_from_name(std::string_view name) {
    if (name == "F32") return DType::F32;
    if (name == "F16") return DType::F16;
    if (name == "BF16") return DType::BF16;
    if (name == "F8_E4M3") return DType::F8_E4M3;
    if (name == "I64") return DType::I64;
    if (name == "I32") return DType::I32;
    if (name == "U8") return DType::U8;
    return std::nullopt;
}

std::string_view dtype_name(DType dtype) {
    switch (dtype) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::F8_E4M3: return "F8_E4M3";
        case DType::I64: return "I64";
        case DType::I32: return "I32";
        case DType::U8: return "U8";
    }
    return "?";
}

size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::F32: case DType::I32: return 4;
        case DType::F16: case DType::BF16: return 2;
        case DType::F8_E4M3: case DType::U8: return 1;
        case DType::I64: return 8;
    }
    return 0;
}

bool dtype_is_float(DType dtype) {
    return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F8_E4M3;
}

float f16_to_float(uint16_t bits) {
    uint32_t sign = (bits >> 15) & 1u, exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
    float magnitude;
    if (exponent == 0) magnitude = std::ldexp(float(mantissa), -24);
    else if (exponent == 31) magnitude = mantissa ? NAN : INFINITY;
    else magnitude = std::ldexp(float(mantissa | 0x400u), int(exponent) - 25);
    return sign ? -magnitude : magnitude;
}

uint16_t float_to_f16(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) return sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN, infinity
    if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504
    if (magnitude < 0x38800000u) {                           // below 2^-14: a float16 subnormal (or zero)
        float absolute;
        std::memcpy(&absolute, &magnitude, sizeof absolute);
        return sign | uint16_t(std::nearbyint(absolute * 16777216.0f));  // in units of 2^-24, nearest even
    }
    // Rebias the exponent (127 → 15) and round the mantissa from 23 to 10 bits, nearest even.
    const uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return sign | uint16_t((rounded - 0x38000000u) >> 13);
}

// float8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN.
float f8_e4m3_to_float(uint8_t bits) {
    uint32_t sign = bits >> 7, exponent = (bits >> 3) & 0xfu, mantissa = bits & 0x7u;
    float magnitude;
    if (exponent == 0xf && mantissa == 0x7) magnitude = NAN;
    else if (exponent == 0) magnitude = std::ldexp(float(mantissa), -9);
    else magnitude = std::ldexp(float(mantissa | 0x8u), int(exponent) - 10);
    return sign ? -magnitude : magnitude;
}

void convert_to_float(DType dtype, const void* source, float* destination, size_t count) {
    switch (dtype) {
        case DType::F32:
            std::memcpy(destination, source, count * sizeof(float));
            return;
        case DType::BF16: {
            const auto* bits = static_cast<const uint16_t*>(source);
            for (size_t i = 0; i < count; ++i) destination[i] = bf16_to_float(bits[i]);
            return;
        }
        case DType::F16: {
            const auto* bits = static_cast<const uint16_t*>(source);
            for (size_t i = 0; i < count; ++i) destination[i] = f16_to_float(bits[i]);
            return;
        }
        case DType::F8_E4M3: {
            static const auto table = [] {
                struct Table { float value[256]; } t{};
                for (int i = 0; i < 256; ++i) t.value[i] = f8_e4m3_to_float(uint8_t(i));
                return t;
            }();
            const auto* bytes = static_cast<const uint8_t*>(source);
            for (size_t i = 0; i < count; ++i) destination[i] = table.value[bytes[i]];
            return;
        }
        case DType::I64: case DType::I32: case DType::U8:
            return;
    }
}

}  // namespace mwb
