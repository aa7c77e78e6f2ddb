// A deployment plan: how a model is laid out over a cluster of GPUs and what each GPU holds — weights, KV cache
// for the target context × concurrency, workspace — at the serving engines' default memory fraction; whether it
// fits, and if not the smallest cluster (or weight format) that would; the MTP speculative setting; and a decode
// speed estimate from memory bandwidth. Exporters turn a plan into each engine's files.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/deploy/gpu_catalog.h"
#include "engine/deploy/weight_inventory.h"
#include "engine/model/config.h"

namespace mwb::deploy {

struct AdapterInfo {
    std::string name;       // served under this model name
    std::string path;       // the PEFT adapter folder on the serving machine
    int64_t rank = 0;
};

struct PlanRequest {
    ModelConfig config;
    std::string model;                       // what the engines load: a Hugging Face id or a path
    std::optional<double> checkpoint_bytes;  // the safetensors index's total_size, when the folder has one
    GpuType gpu;
    int64_t gpus_per_node = 8;
    int64_t nodes = 1;
    int64_t context = 32768;
    int64_t concurrency = 64;
    double memory_fraction = 0.9;            // vLLM's --gpu-memory-utilization default
    WeightFormat format = WeightFormat::Checkpoint;
    std::optional<AdapterInfo> adapter;
};

struct ParallelLayout {
    int64_t tp = 1, pp = 1, dp = 1, ep = 1;
    bool dp_attention = false;  // attention data-parallel (each rank its own requests), experts over EP
    std::string describe() const;  // "TP8 × PP2, EP8" / "DP attention 8, EP8"
};

struct GpuMemory {
    double capacity = 0;   // bytes
    double usable = 0;     // capacity × memory fraction
    double weights = 0, kv_cache = 0, workspace = 0;
    double free() const { return usable - weights - kv_cache - workspace; }
};

struct DeploymentPlan {
    PlanRequest request;
    bool fits = false;
    std::string verdict;  // one sentence with the numbers
    std::optional<std::string> smallest_fit;  // where it does not fit: the cluster or format that would
    ParallelLayout layout;
    GpuMemory per_gpu;
    std::string weight_format;  // FP8, BF16, INT8, INT4
    double weight_bytes = 0;
    int64_t kv_bytes_per_token = 0;
    double kv_bytes_total = 0;       // context × concurrency
    int64_t max_concurrency = 0;     // sequences of `context` tokens the KV budget holds
    int64_t mtp_layers = 0;          // > 0: speculative decoding with the model's MTP modules
    double decode_bound_tokens_per_s = 0;     // batch 1: the bytes one token reads, at the GPUs' bandwidth
    double decode_estimate_tokens_per_s = 0;  // 30% of the bound: what the best MoE engines reach at batch 1
    std::vector<std::string> notes;

    nlohmann::json to_json() const;
};

DeploymentPlan plan_deployment(const PlanRequest& request);

// "8×NVIDIA H200", "2 nodes of 8×NVIDIA H100 SXM".
std::string cluster_name(const PlanRequest& request);

// A model folder with config.json and perhaps no weights; reads model.safetensors.index.json's total_size.
Result<PlanRequest> plan_request_for(const std::string& model_directory);

}  // namespace mwb::deploy
