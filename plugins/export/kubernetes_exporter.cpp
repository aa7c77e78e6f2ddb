// Kubernetes: one node is a Deployment of vLLM and a Service; several nodes are a LeaderWorkerSet of SGLang (it
// takes the group's leader address, size and rank straight from LWS's variables) and a Service on the leader.
// GPUs as resources, /dev/shm in memory, health probes with room for a slow load, Prometheus scrape annotations.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <map>

#include "plugins/export/exporter.h"
#include "plugins/export/sglang_exporter.h"
#include "plugins/export/vllm_exporter.h"
#include "plugins/export/yaml_strings.h"

namespace mwb::exporters {

namespace {

constexpr const char* kVersion = "1.29 (LeaderWorkerSet v1)";

std::string app_name(const std::string& model) {
    std::string name;
    for (char c : model.substr(model.find_last_of('/') + 1)) {
        const char lower = char(std::tolower(static_cast<unsigned char>(c)));
        name += std::isalnum(static_cast<unsigned char>(lower)) ? lower : '-';
    }
    while (!name.empty() && name.back() == '-') name.pop_back();
    return name.substr(0, 50);
}

void probe(YAML::Emitter& out, const char* key, int port, int initial_delay, int period) {
    out << YAML::Key << key << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "httpGet" << YAML::Value << YAML::BeginMap << YAML::Key << "path" << YAML::Value << "/health" << YAML::Key << "port"
        << YAML::Value << port << YAML::EndMap;
    out << YAML::Key << "initialDelaySeconds" << YAML::Value << initial_delay << YAML::Key << "periodSeconds" << YAML::Value << period;
    // Loading hundreds of GB takes minutes: a probe that gives up early kills the pod mid-load.
    out << YAML::Key << "failureThreshold" << YAML::Value << 60 << YAML::EndMap;
}

// A container of the serving engine: command, GPUs, /dev/shm, port, probes (on the serving pod only).
void container(YAML::Emitter& out, const deploy::DeploymentPlan& plan, const std::string& name, const std::string& image,
               const std::vector<std::string>& command, int port, bool probes) {
    const deploy::PlanRequest& r = plan.request;
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << name << YAML::Key << "image" << YAML::Value << image;
    out << YAML::Key << "command" << YAML::Value;
    quoted_sequence(out, command);
    out << YAML::Key << "env" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "HF_TOKEN"
        << YAML::Key << "valueFrom" << YAML::Value << YAML::BeginMap << YAML::Key << "secretKeyRef" << YAML::Value << YAML::BeginMap
        << YAML::Key << "name" << YAML::Value << "hf-token" << YAML::Key << "key" << YAML::Value << "token" << YAML::Key << "optional"
        << YAML::Value << true << YAML::EndMap << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
    out << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "containerPort" << YAML::Value << port
        << YAML::EndMap << YAML::EndSeq;
    out << YAML::Key << "resources" << YAML::Value << YAML::BeginMap << YAML::Key << "limits" << YAML::Value << YAML::BeginMap << YAML::Key
        << r.gpu.resource << YAML::Value << YAML::DoubleQuoted << std::to_string(r.gpus_per_node) << YAML::EndMap << YAML::EndMap;
    out << YAML::Key << "volumeMounts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "dshm"
        << YAML::Key << "mountPath" << YAML::Value << "/dev/shm" << YAML::EndMap << YAML::EndSeq;
    if (probes) {
        probe(out, "readinessProbe", port, 60, 5);
        probe(out, "livenessProbe", port, 60, 10);
    }
    out << YAML::EndMap;
}

void shm_volume(YAML::Emitter& out) {
    out << YAML::Key << "volumes" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "dshm"
        << YAML::Key << "emptyDir" << YAML::Value << YAML::BeginMap << YAML::Key << "medium" << YAML::Value << "Memory" << YAML::Key
        << "sizeLimit" << YAML::Value << "32Gi" << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
}

void scrape_annotations(YAML::Emitter& out, int port) {
    out << YAML::Key << "annotations" << YAML::Value << YAML::BeginMap;
    quoted_value(out, "prometheus.io/scrape", "true");
    quoted_value(out, "prometheus.io/port", std::to_string(port));
    quoted_value(out, "prometheus.io/path", "/metrics");
    out << YAML::EndMap;
}

void service(YAML::Emitter& out, const std::string& name, int port, const std::map<std::string, std::string>& selector) {
    out << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "v1" << YAML::Key << "kind" << YAML::Value << "Service";
    out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::EndMap;
    out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "selector" << YAML::Value << selector;
    out << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "http"
        << YAML::Key << "port" << YAML::Value << port << YAML::Key << "targetPort" << YAML::Value << port << YAML::EndMap << YAML::EndSeq;
    out << YAML::EndMap << YAML::EndMap;
}

std::string single_node(const deploy::DeploymentPlan& plan, const ExportContext& context, const std::string& name) {
    YAML::Emitter out;
    out << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "apps/v1" << YAML::Key << "kind" << YAML::Value
        << "Deployment";
    out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::EndMap;
    out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "replicas" << YAML::Value << 1;
    out << YAML::Key << "selector" << YAML::Value << YAML::BeginMap << YAML::Key << "matchLabels" << YAML::Value << YAML::BeginMap
        << YAML::Key << "app" << YAML::Value << name << YAML::EndMap << YAML::EndMap;
    out << YAML::Key << "template" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap << YAML::Key << "labels" << YAML::Value << YAML::BeginMap << YAML::Key
        << "app" << YAML::Value << name << YAML::EndMap;
    scrape_annotations(out, kVllmPort);
    out << YAML::EndMap;
    out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "containers" << YAML::Value << YAML::BeginSeq;
    container(out, plan, "vllm", kVllmImage, vllm_command(plan, context).words(), kVllmPort, true);
    out << YAML::EndSeq;
    shm_volume(out);
    out << YAML::EndMap << YAML::EndMap << YAML::EndMap << YAML::EndMap;
    out << YAML::BeginDoc;
    service(out, name, kVllmPort, {{"app", name}});
    return out.c_str();
}

std::string leader_worker_set(const deploy::DeploymentPlan& plan, const ExportContext& context, const std::string& name) {
    const deploy::PlanRequest& r = plan.request;
    const auto command = [&](bool leader) {
        std::vector<std::string> words = sglang_command(plan, context, leader ? "0" : "$(LWS_WORKER_INDEX)", "$(LWS_LEADER_ADDRESS)",
                                                        "$(LWS_GROUP_SIZE)")
                                             .words();
        return words;
    };
    YAML::Emitter out;
    out << YAML::BeginDoc << YAML::BeginMap << YAML::Key << "apiVersion" << YAML::Value << "leaderworkerset.x-k8s.io/v1" << YAML::Key << "kind"
        << YAML::Value << "LeaderWorkerSet";
    out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::EndMap;
    out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "replicas" << YAML::Value << 1;
    out << YAML::Key << "leaderWorkerTemplate" << YAML::Value << YAML::BeginMap << YAML::Key << "size" << YAML::Value << r.nodes << YAML::Key
        << "restartPolicy" << YAML::Value << "RecreateGroupOnPodRestart";
    for (const bool leader : {true, false}) {
        out << YAML::Key << (leader ? "leaderTemplate" : "workerTemplate") << YAML::Value << YAML::BeginMap;
        out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap << YAML::Key << "labels" << YAML::Value << YAML::BeginMap << YAML::Key
            << "role" << YAML::Value << (leader ? "leader" : "worker") << YAML::EndMap;
        if (leader) scrape_annotations(out, kSglangPort);
        out << YAML::EndMap;
        out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap << YAML::Key << "containers" << YAML::Value << YAML::BeginSeq;
        container(out, plan, leader ? "sglang-leader" : "sglang-worker", kSglangImage, command(leader), kSglangPort, leader);
        out << YAML::EndSeq;
        shm_volume(out);
        out << YAML::EndMap << YAML::EndMap;
    }
    out << YAML::EndMap << YAML::EndMap << YAML::EndMap;
    out << YAML::BeginDoc;
    service(out, name + "-leader", kSglangPort, {{"leaderworkerset.sigs.k8s.io/name", name}, {"role", "leader"}});
    return out.c_str();
}

class KubernetesExporter final : public Exporter {
public:
    std::string id() const override { return "k8s"; }
    std::string title() const override { return "Kubernetes"; }
    std::string engine_version() const override { return kVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const std::string name = app_name(r.model);
        if (name.empty()) return make_error("the model name '" + r.model + "' gives no Kubernetes name: set one with --model-id");
        const std::string header = "# Kubernetes " + std::string(kVersion) + ": " + r.model + " on " +
                                   deploy::cluster_name(r) + ", " + plan.layout.describe() + ". Written by MoE Workbench.\n";
        ExportResult result{id(), {}, {}};
        if (r.nodes == 1) {
            result.files.push_back({"k8s/" + name + ".yaml", header + single_node(plan, context, name) + "\n"});
            result.how_to_run = "`kubectl apply -f k8s/" + name + ".yaml`: a Deployment of vLLM with " + std::to_string(r.gpus_per_node) +
                                " GPUs and a Service on port 8000. A Secret `hf-token` (key `token`) is read if the model needs one.";
        } else {
            result.files.push_back({"k8s/" + name + "-lws.yaml", header + leader_worker_set(plan, context, name) + "\n"});
            result.how_to_run = "Install LeaderWorkerSet (kubernetes-sigs/lws), then `kubectl apply -f k8s/" + name + "-lws.yaml`: a group of " +
                                std::to_string(r.nodes) + " SGLang pods and a Service on the leader's port 30000.";
        }
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_kubernetes_exporter() { return std::make_unique<KubernetesExporter>(); }

}  // namespace mwb::exporters
