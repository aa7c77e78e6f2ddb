// FP8 as the CPU emulator provides it (tests only): E4M3 storage and its exact conversion to half and float.
#pragma once

#include <cuda_fp16.h>

using __nv_fp8_storage_t = unsigned char;
using __nv_fp8x2_storage_t = unsigned short;
enum __nv_fp8_interpretation_t { __NV_E4M3, __NV_E5M2 };

struct __nv_fp8_e4m3 {
    __nv_fp8_storage_t __x;
    explicit operator float() const { return mwb::f8_e4m3_to_float(__x); }
};

// Two E4M3 values (low byte first) as two halves, exactly (every E4M3 value is a half). E5M2 is not emulated.
inline __half2_raw __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t pair, __nv_fp8_interpretation_t interpretation) {
    if (interpretation != __NV_E4M3) return {0x7e00, 0x7e00};  // NaN: nothing here converts E5M2
    return {mwb_emulator::float_to_half(mwb::f8_e4m3_to_float(static_cast<unsigned char>(pair & 0xff))),
            mwb_emulator::float_to_half(mwb::f8_e4m3_to_float(static_cast<unsigned char>(pair >> 8)))};
}
