// DeepSeek-VL's image side: the SigLIP tower and the aligner (linear → exact GELU → linear) that turn the pixel
// values of one image into rows of the language model's embedding space, one per image token of the prompt.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/cpu/thread_pool.h"
#include "engine/vision/siglip.h"

namespace mwb {

// The tower and aligner of a deepseek_vl graph as views of its store (biases and norms decoded to float32); the
// CPU encoder below and the CUDA one (kernels/cuda_vision_encoder.h) both start from it.
struct VisionWeights {
    SiglipWeights tower;
    DenseWeights aligner_linear1, aligner_linear2;
    int32_t image_token_id = 0;
};
// Fails for other models and for a missing or misshapen vision tensor, naming it.
Result<VisionWeights> load_vision_weights(const ModelGraph& graph);

// What turns one image's pixel values into rows of the language model's embedding space: the CPU encoder below,
// or the CUDA one (kernels/cuda_vision_encoder.h).
class ImageEncoder {
public:
    virtual ~ImageEncoder() = default;
    virtual int64_t image_size() const = 0;        // pixel values are [3, image_size, image_size]
    virtual int64_t tokens_per_image() const = 0;  // feature rows per image
    virtual int64_t feature_width() const = 0;     // the language model's hidden size
    virtual int32_t image_token_id() const = 0;
    // Pixel values [3, image_size, image_size] (preprocess_image) → image features [tokens_per_image, feature_width].
    // One caller at a time.
    virtual Result<std::vector<float>> encode(std::span<const float> pixel_values) = 0;
};

class VisionEncoder : public ImageEncoder {
public:
    // The tower and aligner of a deepseek_vl graph (load_model_graph of the folder); the weights stay mapped in
    // the graph's store. Fails for other models and for a missing or misshapen vision tensor, naming it.
    static Result<VisionEncoder> load(std::shared_ptr<const ModelGraph> graph, int threads = 0);

    int64_t image_size() const override { return weights_.tower.config.image_size; }
    int64_t tokens_per_image() const override { return weights_.tower.config.patches_per_image(); }
    int64_t feature_width() const override { return graph_->config.hidden_size; }
    int32_t image_token_id() const override { return weights_.image_token_id; }
    Result<std::vector<float>> encode(std::span<const float> pixel_values) override;

private:
    VisionEncoder() = default;

    std::shared_ptr<const ModelGraph> graph_;
    VisionWeights weights_;
    std::unique_ptr<ThreadPool> pool_;
};

}  // namespace mwb
