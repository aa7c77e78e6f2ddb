// What the GGUF targets (llama.cpp's server, Ollama) run: the quantisation that fits the GPUs, the file name,
// and for MoE models that do not fit how many layers keep their experts in CPU memory.
#pragma once

#include <cstdint>
#include <string>

#include "engine/deploy/deployment_plan.h"

namespace mwb::exporters {

struct GgufPlan {
    std::string quantisation;  // Q8_0 or Q4_K_M
    std::string file;          // MODEL-Q4_K_M.gguf
    int64_t cpu_moe_layers = 0;  // --n-cpu-moe: MoE layers whose experts stay in CPU memory
    int64_t moe_layers = 0;
    std::string convert_commands;  // how to make the file from the Hugging Face folder
};

GgufPlan gguf_plan(const deploy::DeploymentPlan& plan);

}  // namespace mwb::exporters
