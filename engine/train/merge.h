// Merging an adapter into its base model: W + s·B·A written as a full checkpoint in the original layout (the
// same tensor names, config and tokenizer files, safetensors shards with an index when more than one) that
// this engine and transformers load without the adapter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/io/dtype.h"
#include "engine/train/lora_adapter.h"

namespace mwb::train {

struct MergeOptions {
    std::optional<DType> dtype;                          // of the merged weights; the stored dtype when unset
    int64_t max_shard_bytes = int64_t(5) << 30;          // transformers' default shard size
};

Status merge_adapter(const std::string& model_directory, const ModelGraph& graph, const LoraAdapter& adapter,
                     const std::string& output_directory, const MergeOptions& options = {});

}  // namespace mwb::train
