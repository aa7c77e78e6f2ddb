// Element types found in checkpoints, and their conversion to float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace mwb {

enum class DType { F32, F16, BF16, F8_E4M3, I64, I32, U8 };

std::optional<DType> dtype_from_name(std::string_view safetensors_name);
std::string_view dtype_name(DType dtype);
size_t dtype_size(DType dtype);
bool dtype_is_float(DType dtype);

inline float bf16_to_float(uint16_t bits) {
    uint32_t wide = uint32_t(bits) << 16;
    float value;
    std::memcpy(&value, &wide, sizeof value);
    return value;
}

// Round to nearest even, as torch does when it casts float32 to bfloat16.
inline uint16_t float_to_bf16(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

float f16_to_float(uint16_t bits);
// Round to nearest even, overflow to infinity, as torch casts float32 to float16.
uint16_t float_to_f16(float value);
float f8_e4m3_to_float(uint8_t bits);

// Converts `count` elements of a float dtype starting at `source` into float32.
void convert_to_float(DType dtype, const void* source, float* destination, size_t count);

}  // namespace mwb
