#include "app/services/deployment_export.h"

#include <QDir>
#include <QFileInfo>

#include "engine/train/lora_adapter.h"

namespace mwb::app {

ExportPreview preview_export(const ExportRequest& request) {
    ExportPreview preview;
    auto plan_request = deploy::plan_request_for(request.model_directory.toStdString());
    if (!plan_request) {
        preview.error = QString::fromStdString(plan_request.error().message);
        return preview;
    }
    auto gpu = deploy::find_gpu(request.gpu.toStdString());
    if (!gpu) {
        preview.error = QObject::tr("unknown GPU %1").arg(request.gpu);
        return preview;
    }
    plan_request->gpu = *gpu;
    plan_request->gpus_per_node = request.gpus_per_node;
    plan_request->nodes = request.nodes;
    plan_request->context = request.context;
    plan_request->concurrency = request.concurrency;
    plan_request->format = request.format;
    if (!request.model_id.trimmed().isEmpty()) plan_request->model = request.model_id.trimmed().toStdString();
    if (!request.adapter_directory.isEmpty()) {
        auto config = train::read_lora_config(request.adapter_directory.toStdString());
        if (!config) {
            preview.error = QString::fromStdString(config.error().message);
            return preview;
        }
        plan_request->adapter = deploy::AdapterInfo{QFileInfo(request.adapter_directory).fileName().toStdString(),
                                                    QDir(request.adapter_directory).absolutePath().toStdString(), config->rank};
    }
    preview.plan = deploy::plan_deployment(*plan_request);
    exporters::ExportContext context;
    context.model_directory = request.model_directory.toStdString();
    for (const auto& exporter : exporters::exporters()) {
        auto written = exporter->write(preview.plan, context);
        if (!written) {
            preview.error = QString::fromStdString(exporter->title() + ": " + written.error().message);
            return preview;
        }
        preview.results.push_back(std::move(written.value()));
    }
    return preview;
}

Status save_export_folder(const QString& folder, const ExportPreview& preview) {
    return exporters::save_export(folder.toStdString(), preview.plan, preview.results);
}

QString export_title(const ExportPreview& preview) {
    const deploy::PlanRequest& r = preview.plan.request;
    return QObject::tr("%1 on %2%3×%4 (%5)")
        .arg(QString::fromStdString(r.model))
        .arg(r.nodes > 1 ? QObject::tr("%1 nodes of ").arg(r.nodes) : QString())
        .arg(r.gpus_per_node)
        .arg(QString::fromStdString(r.gpu.name), QString::fromStdString(preview.plan.layout.describe()));
}

QString export_params_json(const ExportPreview& preview, const QString& folder) {
    nlohmann::json params = {{"plan", preview.plan.to_json()}, {"folder", folder.toStdString()}};
    for (const auto& result : preview.results) params["targets"].push_back(result.target);
    return QString::fromStdString(params.dump());
}

}  // namespace mwb::app
