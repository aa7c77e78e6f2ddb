#include "engine/vision/image_prompt.h"

#include <string>

namespace mwb {

Result<EmbeddingOverrides> image_embedding_overrides(std::span<const int32_t> ids, int32_t image_token_id,
                                                     std::span<const float> features, int64_t width) {
    if (width <= 0 || features.size() % size_t(width))
        return make_error("the image features hold " + std::to_string(features.size()) + " values, not whole rows of " +
                          std::to_string(width));
    EmbeddingOverrides overrides;
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == image_token_id) overrides.rows.push_back(int64_t(i));
    const size_t feature_rows = features.size() / size_t(width);
    if (overrides.rows.size() != feature_rows)
        return make_error("the prompt has " + std::to_string(overrides.rows.size()) + " image tokens (id " + std::to_string(image_token_id) +
                          ") but the images have " + std::to_string(feature_rows) + " feature rows; each image needs exactly " +
                          "as many image tokens as its features have rows");
    overrides.values.assign(features.begin(), features.end());
    return overrides;
}

Result<ForwardBatch> image_prompt_batch(std::span<const int32_t> ids, int32_t image_token_id, std::span<const float> features,
                                        int64_t width, int64_t slot) {
    auto overrides = image_embedding_overrides(ids, image_token_id, features, width);
    if (!overrides) return overrides.error();
    ForwardBatch batch;
    batch.tokens.assign(ids.begin(), ids.end());
    batch.chunks = {{slot, 0, int64_t(ids.size())}};
    batch.embedding_overrides = std::move(*overrides);
    return batch;
}

Result<std::vector<int32_t>> expand_image_placeholders(std::span<const int32_t> ids, int32_t image_token_id, int64_t tokens_per_image) {
    std::vector<int32_t> expanded;
    for (size_t i = 0; i < ids.size();) {
        if (ids[i] != image_token_id) {
            expanded.push_back(ids[i++]);
            continue;
        }
        size_t run = 0;
        while (i + run < ids.size() && ids[i + run] == image_token_id) ++run;
        if (run != 1 && int64_t(run) != tokens_per_image)
            return make_error("the prompt has a run of " + std::to_string(run) + " image tokens at position " + std::to_string(i) +
                              ": give one placeholder per image, or " + std::to_string(tokens_per_image) + " image tokens");
        expanded.insert(expanded.end(), size_t(tokens_per_image), image_token_id);
        i += run;
    }
    return expanded;
}

}  // namespace mwb
