// The Export page's service: a deployment plan and every target's files for a model folder and a cluster
// shape (Qt-free engine and exporters underneath), saving them to a folder, and the history entry of an export.
#pragma once

#include <QString>
#include <vector>

#include "engine/deploy/deployment_plan.h"
#include "plugins/export/exporter.h"

namespace mwb::app {

struct ExportRequest {
    QString model_directory;
    QString model_id;           // what the engines load; the folder's name when empty
    QString adapter_directory;  // empty: none
    QString gpu = "h100";
    int gpus_per_node = 8;
    int nodes = 1;
    qint64 context = 32768;
    qint64 concurrency = 64;
    deploy::WeightFormat format = deploy::WeightFormat::Checkpoint;
};

struct ExportPreview {
    QString error;  // non-empty: no plan (the folder has no usable config.json, …)
    deploy::DeploymentPlan plan;
    std::vector<exporters::ExportResult> results;  // one per target, in the order of exporters()
};

// Reads the folder (call it off the GUI thread), plans and writes every target in memory.
ExportPreview preview_export(const ExportRequest& request);
// Writes the files, README.md and plan.json into `folder`.
Status save_export_folder(const QString& folder, const ExportPreview& preview);
// The history's record of an export: its title and the params JSON (plan, targets, folder).
QString export_title(const ExportPreview& preview);
QString export_params_json(const ExportPreview& preview, const QString& folder);

}  // namespace mwb::app
