// Docker Compose: one file per node. One node runs vLLM; several run SGLang, each file with its node's rank.
#include <yaml-cpp/yaml.h>

#include "plugins/export/exporter.h"
#include "plugins/export/sglang_exporter.h"
#include "plugins/export/vllm_exporter.h"
#include "plugins/export/yaml_strings.h"

namespace mwb::exporters {

namespace {

constexpr const char* kVersion = "Compose specification (docker compose v2)";

std::string compose_file(const deploy::DeploymentPlan& plan, const std::string& image, const std::vector<std::string>& command, int port,
                         bool publish) {
    const deploy::PlanRequest& r = plan.request;
    YAML::Emitter out;
    out << YAML::BeginMap << YAML::Key << "services" << YAML::Value << YAML::BeginMap << YAML::Key << "llm" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "image" << YAML::Value << image;
    // The whole command replaces the image's entrypoint (vLLM's image starts its API server by itself).
    out << YAML::Key << "entrypoint" << YAML::Value;
    quoted_sequence(out, command);
    out << YAML::Key << "ipc" << YAML::Value << "host" << YAML::Key << "shm_size" << YAML::Value << "32gb";
    if (r.nodes > 1) out << YAML::Key << "network_mode" << YAML::Value << "host";
    else if (publish)  // quoted: YAML 1.1 reads an unquoted 8000:8000 as a number in base 60
        out << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq << YAML::DoubleQuoted << (std::to_string(port) + ":" + std::to_string(port))
            << YAML::EndSeq;
    out << YAML::Key << "environment" << YAML::Value << YAML::BeginSeq << "HF_TOKEN" << YAML::EndSeq;
    out << YAML::Key << "volumes" << YAML::Value << YAML::BeginSeq << "${HOME}/.cache/huggingface:/root/.cache/huggingface" << YAML::EndSeq;
    out << YAML::Key << "deploy" << YAML::Value << YAML::BeginMap << YAML::Key << "resources" << YAML::Value << YAML::BeginMap << YAML::Key
        << "reservations" << YAML::Value << YAML::BeginMap << YAML::Key << "devices" << YAML::Value << YAML::BeginSeq << YAML::BeginMap
        << YAML::Key << "driver" << YAML::Value << (r.gpu.resource == "amd.com/gpu" ? "amd" : "nvidia") << YAML::Key << "count" << YAML::Value
        << r.gpus_per_node << YAML::Key << "capabilities" << YAML::Value << YAML::Flow << std::vector<std::string>{"gpu"} << YAML::EndMap
        << YAML::EndSeq << YAML::EndMap << YAML::EndMap << YAML::EndMap;
    if (publish) {
        out << YAML::Key << "healthcheck" << YAML::Value << YAML::BeginMap << YAML::Key << "test" << YAML::Value;
        quoted_sequence(out, {"CMD", "curl", "-fsS", "http://localhost:" + std::to_string(port) + "/health"});
        out << YAML::Key << "interval" << YAML::Value << "30s" << YAML::Key << "start_period" << YAML::Value << "20m" << YAML::EndMap;
    }
    out << YAML::EndMap << YAML::EndMap << YAML::EndMap;
    return out.c_str();
}

class ComposeExporter final : public Exporter {
public:
    std::string id() const override { return "compose"; }
    std::string title() const override { return "Docker Compose"; }
    std::string engine_version() const override { return kVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const std::string header = "# " + std::string(kVersion) + ": " + r.model + ", " + plan.layout.describe() + ". Written by MoE Workbench.\n";
        ExportResult result{id(), {}, {}};
        if (r.nodes == 1) {
            result.files.push_back({"compose/compose.yaml",
                                    header + compose_file(plan, kVllmImage, vllm_command(plan, context).words(), kVllmPort, true) + "\n"});
            result.how_to_run = "`docker compose -f compose/compose.yaml up` (vLLM on port 8000; needs the NVIDIA container toolkit).";
            return result;
        }
        for (int64_t node = 0; node < r.nodes; ++node)
            result.files.push_back(
                {"compose/node" + std::to_string(node) + ".yaml",
                 header + compose_file(plan, kSglangImage,
                                       sglang_command(plan, context, std::to_string(node), "${HEAD_IP:?set HEAD_IP}", std::to_string(r.nodes)).words(),
                                       kSglangPort, node == 0) +
                     "\n"});
        result.how_to_run = "On node N run `HEAD_IP=<node 0's address> docker compose -f compose/nodeN.yaml up` (SGLang, host networking; "
                            "node 0 serves port 30000).";
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_compose_exporter() { return std::make_unique<ComposeExporter>(); }

}  // namespace mwb::exporters
