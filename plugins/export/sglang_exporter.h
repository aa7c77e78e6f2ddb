// SGLang's `python3 -m sglang.launch_server` command for a plan, shared by the SGLang target and the
// multi-node Kubernetes and Compose targets.
#pragma once

#include "plugins/export/command_line.h"
#include "plugins/export/exporter.h"

namespace mwb::exporters {

// `node_rank` and `head` are text so that containers can pass their environment's variables.
CommandLine sglang_command(const deploy::DeploymentPlan& plan, const ExportContext& context, const std::string& node_rank,
                           const std::string& head, const std::string& nodes);
constexpr const char* kSglangVersion = "0.5";
constexpr const char* kSglangImage = "lmsysorg/sglang:v0.5.0-cu126";
constexpr int kSglangPort = 30000;

}  // namespace mwb::exporters
