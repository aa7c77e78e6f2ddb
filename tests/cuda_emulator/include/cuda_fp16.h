// IEEE half precision as the CPU emulator provides it (tests only): storage and exact conversions.
#pragma once

#include <cuda_runtime.h>

#include "engine/io/dtype.h"

struct __half_raw {
    unsigned short x;
};
struct __half2_raw {
    unsigned short x, y;
};

namespace mwb_emulator {
unsigned short float_to_half(float value);  // round to nearest even
}  // namespace mwb_emulator

struct __half {
    unsigned short __x;
    __half() = default;
    __half(__half_raw raw) : __x(raw.x) {}
    operator float() const { return mwb::f16_to_float(__x); }
};
struct alignas(4) __half2 {
    __half x, y;
    __half2() = default;
    __half2(__half2_raw raw) : x(__half_raw{raw.x}), y(__half_raw{raw.y}) {}
    __half2(__half a, __half b) : x(a), y(b) {}
};

inline float2 __half22float2(__half2 h) { return {float(h.x), float(h.y)}; }
