// Ollama: a Modelfile over the GGUF file, with the model's chat template written in Ollama's Go-template
// syntax for the template families DeepSeek's models use, the sampling of generation_config.json, the context,
// the end-of-turn stop strings, and the adapter.
#include <cctype>
#include <sstream>

#include "plugins/export/exporter.h"
#include "plugins/export/gguf_plan.h"
#include "plugins/export/model_files.h"

namespace mwb::exporters {

namespace {

constexpr const char* kVersion = "0.12";

// The Go templates of each family: the same turns as the model's Jinja template, in .System / .Messages form.
std::string go_template(TemplateFamily family) {
    switch (family) {
        case TemplateFamily::DeepseekV3:
            return "{{- if .System }}{{ .System }}{{ end }}\n"
                   "{{- range $i, $_ := .Messages }}\n"
                   "{{- $last := eq (len (slice $.Messages $i)) 1 }}\n"
                   "{{- if eq .Role \"user\" }}<｜User｜>{{ .Content }}\n"
                   "{{- else if eq .Role \"assistant\" }}<｜Assistant｜>{{ .Content }}{{ if not $last }}<｜end▁of▁sentence｜>{{ end }}\n"
                   "{{- end }}\n"
                   "{{- if and $last (ne .Role \"assistant\") }}<｜Assistant｜>{{ end }}\n"
                   "{{- end }}";
        case TemplateFamily::DeepseekV2:
            return "{{- if .System }}{{ .System }}\n\n{{ end }}\n"
                   "{{- range .Messages }}\n"
                   "{{- if eq .Role \"user\" }}User: {{ .Content }}\n\n"
                   "{{ else if eq .Role \"assistant\" }}Assistant: {{ .Content }}<｜end▁of▁sentence｜>{{ end }}\n"
                   "{{- end }}Assistant:";
        case TemplateFamily::Qwen2:
            return "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\n"
                   "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";
        case TemplateFamily::Llama3:
            return "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}\n"
                   "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n";
        case TemplateFamily::Unknown: return {};
    }
    return {};
}

std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

class OllamaExporter final : public Exporter {
public:
    std::string id() const override { return "ollama"; }
    std::string title() const override { return "Ollama"; }
    std::string engine_version() const override { return kVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const GgufPlan g = gguf_plan(plan);
        const ModelFiles files = read_model_files(context.model_directory);
        std::ostringstream m;
        m << "# Ollama " << kVersion << " Modelfile: " << r.model << " as " << g.quantisation << " GGUF. Written by MoE Workbench.\n";
        m << "FROM ./" << g.file << "\n";
        if (r.adapter) m << "ADAPTER " << r.adapter->path << "\n";
        const std::string tmpl = go_template(files.family);
        if (!tmpl.empty()) m << "TEMPLATE \"\"\"" << tmpl << "\"\"\"\n";
        m << "PARAMETER num_ctx " << r.context << "\n";
        if (files.temperature) m << "PARAMETER temperature " << *files.temperature << "\n";
        if (files.top_p) m << "PARAMETER top_p " << *files.top_p << "\n";
        if (files.top_k) m << "PARAMETER top_k " << *files.top_k << "\n";
        for (const auto& stop : files.stop) m << "PARAMETER stop " << quoted(stop) << "\n";
        ExportResult result{id(), {}, {}};
        result.files.push_back({"ollama/Modelfile", m.str()});
        std::string name = r.model.substr(r.model.find_last_of('/') + 1);
        for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        result.how_to_run = "Put " + g.file + " (made as in `llama-server/serve.sh`) beside `ollama/Modelfile`, then `ollama create " + name +
                            " -f ollama/Modelfile` and `ollama run " + name + "`. Ollama serves one request at a time unless "
                            "OLLAMA_NUM_PARALLEL is raised (memory grows with it × the context).";
        if (tmpl.empty())
            result.how_to_run += " The model's chat template is not one of the DeepSeek, Qwen or Llama families this exporter translates: "
                                 "Ollama uses the template embedded in the GGUF file.";
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_ollama_exporter() { return std::make_unique<OllamaExporter>(); }

}  // namespace mwb::exporters
