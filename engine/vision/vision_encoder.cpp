#include "engine/vision/vision_encoder.h"

#include <cstdint>
#include <string>

#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb {

Result<VisionWeights> load_vision_weights(const ModelGraph& graph) {
    const ModelConfig& config = graph.config;
    if (!config.vision_language)
        return make_error("this model (" + architecture_name(config.architecture) + ") reads no images; image questions need a deepseek_vl model");
    const VisionConfig& vision = config.vision_language->vision;
    VisionWeights weights;
    auto tower = load_siglip(*graph.store, config, vision, "model.vision_model.");
    if (!tower) return tower.error();
    weights.tower = std::move(*tower);
    WeightLoader loader(*graph.store, config);
    auto linear1 = load_dense(loader, "model.aligner.linear1", config.hidden_size, vision.hidden_size);
    if (!linear1) return linear1.error();
    auto linear2 = load_dense(loader, "model.aligner.linear2", config.hidden_size, config.hidden_size);
    if (!linear2) return linear2.error();
    weights.aligner_linear1 = std::move(*linear1);
    weights.aligner_linear2 = std::move(*linear2);
    weights.image_token_id = int32_t(config.vision_language->image_token_id);
    return weights;
}

Result<VisionEncoder> VisionEncoder::load(std::shared_ptr<const ModelGraph> graph, int threads) {
    auto weights = load_vision_weights(*graph);
    if (!weights) return weights.error();
    VisionEncoder encoder;
    encoder.weights_ = std::move(*weights);
    encoder.graph_ = std::move(graph);
    encoder.pool_ = std::make_unique<ThreadPool>(threads);
    return encoder;
}

Result<std::vector<float>> VisionEncoder::encode(std::span<const float> pixel_values) {
    const int64_t side = image_size();
    const size_t expected = size_t(3 * side * side);
    if (pixel_values.size() != expected)
        return make_error("the vision tower takes 3×" + std::to_string(side) + "×" + std::to_string(side) + " pixel values (" +
                          std::to_string(expected) + "), got " + std::to_string(pixel_values.size()) +
                          "; preprocess the image with this model's preprocessor_config.json");
    const std::vector<float> hidden = siglip_forward(*pool_, weights_.tower, pixel_values.data());
    const int64_t rows = tokens_per_image(), width = feature_width();
    std::vector<float> inner(size_t(rows * width)), features(inner.size());
    dense(*pool_, weights_.aligner_linear1, hidden.data(), rows, inner.data());
    cpu::gelu_erf(inner.data(), rows * width);
    dense(*pool_, weights_.aligner_linear2, inner.data(), rows, features.data());
    return features;
}

}  // namespace mwb
