// A deployment exporter turns a plan into the files and commands one serving engine runs it with. Each target
// is one file behind this interface; `exporters()` lists them all, for `mwb export` and the Export page.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/deploy/deployment_plan.h"

namespace mwb::exporters {

// What the exporters need beyond the plan: the model folder (chat template, generation_config.json) and how
// the served model is named.
struct ExportContext {
    std::string model_directory;  // may be empty: then nothing is read from it
    std::string served_name;      // the model name clients send; the plan's model when empty
    std::string head_address = "$HEAD_IP";  // the first node's address in multi-node commands
};

struct ExportedFile {
    std::string name;      // relative to the export folder: "serve.sh", "k8s/deployment.yaml"
    std::string contents;
    bool executable = false;
};

struct ExportResult {
    std::string target;
    std::vector<ExportedFile> files;
    std::string how_to_run;  // the target's section of the export's README
};

class Exporter {
public:
    virtual ~Exporter() = default;
    virtual std::string id() const = 0;              // --target value: vllm, sglang, ...
    virtual std::string title() const = 0;           // "vLLM"
    virtual std::string engine_version() const = 0;  // the version whose flags the files use
    virtual Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const = 0;
};

const std::vector<std::unique_ptr<Exporter>>& exporters();
const Exporter* find_exporter(const std::string& id);

// Writes every file of `results` and a README.md explaining them into `directory` (created), each file
// atomically.
Status save_export(const std::string& directory, const deploy::DeploymentPlan& plan, const std::vector<ExportResult>& results);

}  // namespace mwb::exporters
