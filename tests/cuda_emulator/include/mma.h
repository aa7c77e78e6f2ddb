// The warp matrix functions (nvcuda::wmma) as the CPU emulator provides them, for tests only: 16×16×16 tiles of
// bf16 (or fp16) with float accumulators, the subset the kernels use. The API leaves the fragment layout
// unspecified, so here every lane holds the whole tile and computes the whole product itself; no lane exchange
// is needed. Each call is still warp-collective: it begins with a warp-level sync, so a call that not every lane
// of the warp makes fails the launch as on a device. Pointers must be 32-byte aligned and ldm a multiple of 16
// bytes, as the hardware requires; a violation faults the kernel.
#pragma once

#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace nvcuda::wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator provides 16x16x16 tiles only");
    static constexpr int num_elements = 256;
    float x[256];  // [row][column] of the tile: A is M×K, B is K×N, the accumulator M×N
};

namespace detail {
inline void check(const void* pointer, unsigned ldm, size_t element) {
    if (reinterpret_cast<uintptr_t>(pointer) % 32 != 0) ::mwb_emulator::device_fault("wmma: pointer not 32-byte aligned");
    if ((ldm * element) % 16 != 0) ::mwb_emulator::device_fault("wmma: ldm not a multiple of 16 bytes");
}
}  // namespace detail

template <class Use, class T, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* pointer, unsigned ldm) {
    __syncwarp();
    detail::check(pointer, ldm, sizeof(T));
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c)
            f.x[r * 16 + c] = float(std::is_same_v<Layout, row_major> ? pointer[size_t(r) * ldm + c] : pointer[size_t(c) * ldm + r]);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* pointer, unsigned ldm, layout_t layout) {
    __syncwarp();
    detail::check(pointer, ldm, sizeof(float));
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = layout == mem_row_major ? pointer[size_t(r) * ldm + c] : pointer[size_t(c) * ldm + r];
}

inline void store_matrix_sync(float* pointer, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t layout) {
    __syncwarp();
    detail::check(pointer, ldm, sizeof(float));
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) (layout == mem_row_major ? pointer[size_t(r) * ldm + c] : pointer[size_t(c) * ldm + r]) = f.x[r * 16 + c];
}

template <class Use, class T, class Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float value) {
    for (float& v : f.x) v = value;
}

// d = a·b + c, products of the 16-bit inputs accumulated in float.
template <class T, class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LayoutB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
    __syncwarp();
    float result[256];
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 16; ++n) {
            float sum = c.x[r * 16 + n];
            for (int k = 0; k < 16; ++k) sum += a.x[r * 16 + k] * b.x[k * 16 + n];
            result[r * 16 + n] = sum;
        }
    for (int i = 0; i < 256; ++i) d.x[i] = result[i];
}

}  // namespace nvcuda::wmma
