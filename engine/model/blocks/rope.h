// Rotary position embedding: inverse frequencies with YaRN / llama3 / linear scaling, as transformers computes them.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/config.h"

namespace mwb {

enum class RopeLayout {
    NeoX,         // rotate the two halves of the head (Qwen2, Llama)
    Interleaved,  // rotate adjacent pairs (DeepSeek V2/V3 MLA rope part)
};

struct RopeTable {
    RopeLayout layout = RopeLayout::NeoX;
    int64_t rotary_dim = 0;
    std::vector<float> inverse_frequency;  // rotary_dim / 2
    float attention_factor = 1.0f;         // YaRN multiplies cos and sin by it

    // Rotates `heads` vectors of rotary_dim values (stride `head_stride`) in place for position `position`.
    void apply(float* data, int64_t heads, int64_t head_stride, int64_t position) const;
    // The transpose of apply() (the rotation backwards, same scale): how a gradient flows back through it.
    void apply_transposed(float* data, int64_t heads, int64_t head_stride, int64_t position) const;

private:
    void rotate(float* data, int64_t heads, int64_t head_stride, int64_t position, float direction) const;
};

RopeTable make_rope_table(const RopeConfig& config, int64_t rotary_dim, RopeLayout layout,
                          int64_t max_position_embeddings);

}  // namespace mwb
