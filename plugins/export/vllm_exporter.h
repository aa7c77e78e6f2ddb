// vLLM's `vllm serve` command for a plan, shared by the vLLM target and the container targets that run vLLM.
#pragma once

#include "plugins/export/command_line.h"
#include "plugins/export/exporter.h"

namespace mwb::exporters {

// The command of one node: `node` 0 is the head (the API server); others run headless data-parallel ranks.
CommandLine vllm_command(const deploy::DeploymentPlan& plan, const ExportContext& context, int64_t node = 0);
constexpr const char* kVllmVersion = "0.12";
constexpr const char* kVllmImage = "vllm/vllm-openai:v0.12.0";
constexpr int kVllmPort = 8000;

}  // namespace mwb::exporters
