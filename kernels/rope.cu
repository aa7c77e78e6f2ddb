// Rotary position embedding in place on bf16 heads: NeoX halves or DeepSeek's interleaved pairs. The inverse
// frequencies already carry YaRN / llama3 / linear scaling (RopeTable); YaRN's attention_factor scales cos and sin.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

__global__ void rope_kernel(bf16* data, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                            const float* inverse_frequency, int64_t half, bool interleaved, float attention_factor) {
    const int64_t row = blockIdx.x;
    const float position = float(positions[row]);
    for (int64_t task = threadIdx.x; task < heads * half; task += blockDim.x) {
        const int64_t head = task / half, i = task % half;
        // The angle is formed in fp32 exactly as RopeTable::apply does; sincosf keeps full range accuracy.
        float s, c;
        sincosf(position * inverse_frequency[i], &s, &c);
        c *= attention_factor;
        s *= attention_factor;
        bf16* h = data + row * row_stride + head * head_stride;
        bf16& a = interleaved ? h[2 * i] : h[i];
        bf16& b = interleaved ? h[2 * i + 1] : h[i + half];
        const float x = __bfloat162float(a), y = __bfloat162float(b);
        a = __float2bfloat16(x * c - y * s);
        b = __float2bfloat16(y * c + x * s);
    }
}

}  // namespace

void apply_rope(bf16* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                const RopeParams& rope, cudaStream_t stream) {
    if (rows <= 0) return;
    MWB_LAUNCH(rope_kernel, unsigned(rows), 128, 0, stream)(data, row_stride, heads, head_stride, positions, rope.inverse_frequency,
                                                    rope.rotary_dim / 2, rope.interleaved, rope.attention_factor);
}

}  // namespace mwb::cuda
