// How many parameters a checkpoint holds and how many bytes they take, from config.json alone: for planning
// deployments of models that are not on this machine. Parameters are grouped the way parallel layouts split
// them: routed experts (split by expert parallelism) and everything else (split by tensor parallelism, or
// replicated under data-parallel attention).
#pragma once

#include <cstdint>
#include <string>

#include "engine/model/config.h"

namespace mwb::deploy {

// How weights are stored: as the checkpoint ships them (bf16, or DeepSeek's FP8 with 128×128 block scales), or
// quantised to weight-only int8 / int4 with one bf16 scale per row per 128 columns (our W8A16 / W4A16, and the
// size class of llama.cpp's Q8_0 / Q4_K).
enum class WeightFormat { Checkpoint, Bf16, Int8, Int4 };
std::string weight_format_name(WeightFormat format, const ModelConfig& config);  // "FP8", "BF16", "INT8", "INT4"

struct WeightInventory {
    // Parameters of the main model (without MTP modules).
    int64_t routed_expert_parameters = 0;
    int64_t other_parameters = 0;   // embeddings, attention, dense and shared-expert MLPs, routers, norms, lm_head
    int64_t mtp_parameters = 0;     // DeepSeek-V3's next-token-prediction modules, shipped in the checkpoint
    int64_t mtp_routed_expert_parameters = 0;  // part of mtp_parameters
    int64_t active_parameters = 0;  // used for one token: all but the routed experts it does not pick

    // Bytes in `format`, the MTP modules included when the plan uses them.
    double routed_expert_bytes = 0, other_bytes = 0, mtp_bytes = 0, mtp_routed_expert_bytes = 0;
    double active_bytes = 0;

    int64_t total_parameters() const { return routed_expert_parameters + other_parameters; }
    double total_bytes(bool with_mtp) const { return routed_expert_bytes + other_bytes + (with_mtp ? mtp_bytes : 0); }
};

WeightInventory weight_inventory(const ModelConfig& config, WeightFormat format);

// KV-cache bytes per token over all layers at bf16: MLA's compressed latent and rope key, or GQA's K and V.
int64_t kv_cache_bytes_per_token(const ModelConfig& config);

}  // namespace mwb::deploy
