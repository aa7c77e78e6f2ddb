// A prompt with images: its image tokens (placeholders, image_token_id) take the image features' rows in order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/core/result.h"
#include "engine/runtime/backend.h"

namespace mwb {

// A prompt as the processor makes it: each image placeholder (one image token, as the chat template writes
// "<image_placeholder>") becomes `tokens_per_image` image tokens; a run that already has that length stays.
// Fails for a run of any other length.
Result<std::vector<int32_t>> expand_image_placeholders(std::span<const int32_t> ids, int32_t image_token_id, int64_t tokens_per_image);

// The k-th image token of `ids` takes row k of `features` [rows, width] (several images: their features one
// after the other). Fails unless there is exactly one image token per feature row.
Result<EmbeddingOverrides> image_embedding_overrides(std::span<const int32_t> ids, int32_t image_token_id,
                                                     std::span<const float> features, int64_t width);

// The prefill batch of the whole prompt in KV-cache slot `slot`, the image features in place of the image tokens
// (logits for the last token; set logits_for_all_tokens for every position).
Result<ForwardBatch> image_prompt_batch(std::span<const int32_t> ids, int32_t image_token_id, std::span<const float> features,
                                        int64_t width, int64_t slot = 0);

}  // namespace mwb
