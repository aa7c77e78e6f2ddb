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

class VisionEncoder {
public:
    // The tower and aligner of a deepseek_vl graph (load_model_graph of the folder); the weights stay mapped in
    // the graph's store. Fails for other models and for a missing or misshapen vision tensor, naming it.
    static Result<VisionEncoder> load(std::shared_ptr<const ModelGraph> graph, int threads = 0);

    int64_t image_size() const { return tower_.config.image_size; }  // pixel values are [3, image_size, image_size]
    int64_t tokens_per_image() const { return tower_.config.patches_per_image(); }
    int64_t feature_width() const { return graph_->config.hidden_size; }  // the language model's hidden size
    int32_t image_token_id() const { return image_token_id_; }

    // Pixel values [3, image_size, image_size] (preprocess_image) → image features [tokens_per_image, feature_width].
    // One caller at a time.
    Result<std::vector<float>> encode(std::span<const float> pixel_values);

private:
    VisionEncoder() = default;

    std::shared_ptr<const ModelGraph> graph_;
    SiglipWeights tower_;
    DenseWeights aligner_linear1_, aligner_linear2_;
    int32_t image_token_id_ = 0;
    std::unique_ptr<ThreadPool> pool_;
};

}  // namespace mwb
