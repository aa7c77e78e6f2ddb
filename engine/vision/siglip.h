// The SigLIP vision transformer of DeepSeek-VL (SiglipVisionModel's last_hidden_state: patch embedding, learned
// positions, pre-norm encoder layers with bidirectional attention, post_layernorm) and its float32 CPU forward.
// The attention-pooling head (`head.*`) only feeds SigLIP's pooled output, which DeepSeek-VL does not use.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/blocks/linear.h"
#include "engine/model/config.h"
#include "engine/runtime/cpu/thread_pool.h"

namespace mwb {

// A linear layer with a bias, the bias decoded to float32.
struct DenseWeights {
    LinearWeight linear;
    std::vector<float> bias;
};

struct LayerNormWeights {
    std::vector<float> weight, bias;
};

struct SiglipLayer {
    LayerNormWeights layer_norm1, layer_norm2;
    DenseWeights q_proj, k_proj, v_proj, out_proj;
    DenseWeights fc1, fc2;
};

struct SiglipWeights {
    VisionConfig config;
    DenseWeights patch_embedding;            // the Conv2d [hidden, channels, patch, patch] as a map of flattened patches
    std::vector<float> position_embedding;   // [patches, hidden]
    std::vector<SiglipLayer> layers;
    LayerNormWeights post_layernorm;
};

Result<DenseWeights> load_dense(const WeightLoader& loader, const std::string& prefix, int64_t out_features, int64_t in_features);
// y[rows, out] = x[rows, in] · Wᵀ + b
void dense(ThreadPool& pool, const DenseWeights& weights, const float* x, int64_t rows, float* y);

// The tower's tensors under `prefix` ("model.vision_model."); a missing or misshapen one is an error naming it.
Result<SiglipWeights> load_siglip(const TensorStore& store, const ModelConfig& model, const VisionConfig& config,
                                  const std::string& prefix);

// pixels [channels, image_size, image_size] → hidden states [patches, hidden], patches in row-major order.
std::vector<float> siglip_forward(ThreadPool& pool, const SiglipWeights& weights, const float* pixels);

}  // namespace mwb
