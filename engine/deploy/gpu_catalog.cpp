#include "engine/deploy/gpu_catalog.h"

namespace mwb::deploy {

// Memory and bandwidth as the vendors' data sheets state them (see deployment-lora-docs-vision.md §1.7).
const std::vector<GpuType>& gpu_catalog() {
    static const std::vector<GpuType> gpus = {
        {"h200", "NVIDIA H200", 141, 4.8, true, true},
        {"h100", "NVIDIA H100 SXM", 80, 3.35, true, true},
        {"a100-80", "NVIDIA A100 80GB", 80, 2.0, true, false},
        {"a100-40", "NVIDIA A100 40GB", 40, 1.555, true, false},
        {"l40s", "NVIDIA L40S", 48, 0.864, false, true},
        {"rtx4090", "NVIDIA GeForce RTX 4090", 24, 1.008, false, true},
        {"rtx6000-ada", "NVIDIA RTX 6000 Ada", 48, 0.96, false, true},
        {"mi300x", "AMD Instinct MI300X", 192, 5.3, true, true, "amd.com/gpu"},
    };
    return gpus;
}

std::optional<GpuType> find_gpu(const std::string& id) {
    for (const auto& gpu : gpu_catalog())
        if (gpu.id == id) return gpu;
    return std::nullopt;
}

std::string gpu_ids() {
    std::string ids;
    for (const auto& gpu : gpu_catalog()) ids += (ids.empty() ? "" : ", ") + gpu.id;
    return ids;
}

}  // namespace mwb::deploy
