// The GPUs a deployment can be planned for: memory, bandwidth, whether a fast GPU-to-GPU link joins the GPUs of
// a node (NVLink, or AMD's Infinity Fabric), and whether they compute in FP8.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mwb::deploy {

struct GpuType {
    std::string id;           // what --gpu takes: h200, h100, a100-80, ...
    std::string name;         // "NVIDIA H200"
    double memory_gib = 0;    // the vendors' "GB" figure, which is GiB: an H100's 80 GB show as 81,559 MiB
    double bandwidth_tbps = 0;
    bool fast_link = false;   // NVLink / Infinity Fabric between the GPUs of a node
    bool fp8 = false;         // FP8 tensor cores (Hopper, Ada, CDNA3); without them FP8 checkpoints run as BF16
    std::string resource = "nvidia.com/gpu";  // the Kubernetes resource name
};

const std::vector<GpuType>& gpu_catalog();
std::optional<GpuType> find_gpu(const std::string& id);
std::string gpu_ids();  // "h200, h100, ..." for error messages

}  // namespace mwb::deploy
