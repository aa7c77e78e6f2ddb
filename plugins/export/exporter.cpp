#include "plugins/export/exporter.h"

#include <filesystem>
#include <system_error>

#include "engine/core/text_file.h"

namespace mwb::exporters {

std::unique_ptr<Exporter> make_vllm_exporter();
std::unique_ptr<Exporter> make_sglang_exporter();
std::unique_ptr<Exporter> make_trtllm_exporter();
std::unique_ptr<Exporter> make_llama_server_exporter();
std::unique_ptr<Exporter> make_ollama_exporter();
std::unique_ptr<Exporter> make_kubernetes_exporter();
std::unique_ptr<Exporter> make_compose_exporter();

const std::vector<std::unique_ptr<Exporter>>& exporters() {
    static const std::vector<std::unique_ptr<Exporter>> all = [] {
        std::vector<std::unique_ptr<Exporter>> list;
        list.push_back(make_vllm_exporter());
        list.push_back(make_sglang_exporter());
        list.push_back(make_trtllm_exporter());
        list.push_back(make_llama_server_exporter());
        list.push_back(make_ollama_exporter());
        list.push_back(make_kubernetes_exporter());
        list.push_back(make_compose_exporter());
        return list;
    }();
    return all;
}

const Exporter* find_exporter(const std::string& id) {
    for (const auto& e : exporters())
        if (e->id() == id) return e.get();
    return nullptr;
}

namespace {

Status write_file(const std::filesystem::path& path, const std::string& contents, bool executable) {
    std::error_code error;
    std::filesystem::create_directories(path.parent_path(), error);
    if (error) return make_error("cannot create " + path.parent_path().string() + ": " + error.message());
    MWB_TRY(write_text_file_atomically(path.string(), contents));
    if (executable)
        std::filesystem::permissions(path, std::filesystem::perms::owner_exec | std::filesystem::perms::group_exec |
                                               std::filesystem::perms::others_exec, std::filesystem::perm_options::add, error);
    if (error) return make_error("cannot make " + path.string() + " executable: " + error.message());
    return {};
}

}  // namespace

Status save_export(const std::string& directory, const deploy::DeploymentPlan& plan, const std::vector<ExportResult>& results) {
    const std::filesystem::path root(directory);
    std::string readme = "# Deployment of " + plan.request.model + "\n\nWritten by MoE Workbench.\n\n## Plan\n\n" + plan.verdict + ".\n";
    if (plan.smallest_fit) readme += "\n" + *plan.smallest_fit + ".\n";
    for (const auto& note : plan.notes) readme += "\n- " + note + ".";
    readme += "\n\n`plan.json` holds the plan's numbers.\n";
    for (const auto& result : results) {
        const Exporter* exporter = find_exporter(result.target);
        readme += "\n## " + (exporter ? exporter->title() + " (" + exporter->engine_version() + ")" : result.target) + "\n\n" + result.how_to_run + "\n\n";
        for (const auto& file : result.files) {
            readme += "- `" + file.name + "`\n";
            MWB_TRY(write_file(root / file.name, file.contents, file.executable));
        }
    }
    MWB_TRY(write_file(root / "plan.json", plan.to_json().dump(2) + "\n", false));
    return write_file(root / "README.md", readme, false);
}

}  // namespace mwb::exporters
