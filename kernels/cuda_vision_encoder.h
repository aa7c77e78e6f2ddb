// DeepSeek-VL's image side on one NVIDIA GPU: the SigLIP tower and the aligner of engine/vision/vision_encoder.h
// (the same function, the same ImageEncoder surface), with bf16 activations, an fp32 residual stream and cuBLAS
// GEMMs.
// Plain C++: no CUDA header is needed to use it (link mwb_cuda).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/config.h"
#include "engine/model/model_graph.h"
#include "engine/vision/vision_encoder.h"

namespace mwb {

class CudaVisionEncoder : public ImageEncoder {
public:
    // Uploads the tower and aligner of a deepseek_vl graph to `device` (weights as bf16, biases and norms fp32)
    // with the workspace of one image; the graph is not needed afterwards. Fails for other models, a missing or
    // misshapen vision tensor (naming it), a missing device, or too little GPU memory (with the bytes).
    static Result<std::unique_ptr<CudaVisionEncoder>> load(std::shared_ptr<const ModelGraph> graph, int device = 0);
    CudaVisionEncoder(const CudaVisionEncoder&) = delete;
    CudaVisionEncoder& operator=(const CudaVisionEncoder&) = delete;
    ~CudaVisionEncoder() override;

    int64_t image_size() const override { return vision_.image_size; }
    int64_t tokens_per_image() const override { return vision_.patches_per_image(); }
    int64_t feature_width() const override { return feature_width_; }
    int32_t image_token_id() const override { return image_token_id_; }
    // Blocks until the GPU is done.
    Result<std::vector<float>> encode(std::span<const float> pixel_values) override;

private:
    struct Device;
    CudaVisionEncoder(const VisionConfig& vision, int64_t feature_width, int32_t image_token_id);

    VisionConfig vision_;
    int64_t feature_width_ = 0;
    int32_t image_token_id_ = 0;
    std::unique_ptr<Device> device_;
};

}  // namespace mwb
