#include "app/services/model_library.h"

#include <QDir>
#include <algorithm>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>

#include "app/services/generation_defaults.h"
#include "engine/model/config.h"
#include "engine/model/model_graph.h"
#include "engine/model/model_summary.h"

namespace mwb::app {

bool is_demo_model(const QString& directory) { return QFileInfo::exists(QDir(directory).filePath("demo_model.json")); }

ModelEntry inspect_model_folder(const QString& directory, const QString& source, const QString& tokenizer_directory) {
    ModelEntry entry;
    entry.path = QDir::cleanPath(QFileInfo(directory).absoluteFilePath());
    entry.name = QFileInfo(entry.path).fileName();
    entry.source = source;
    entry.is_demo = is_demo_model(directory);
    entry.tokenizer_directory = entry.path;
    const QDir dir(directory);

    QFile config_file(dir.filePath("config.json"));
    if (!config_file.open(QIODevice::ReadOnly)) {
        entry.problem = QStringLiteral("config.json cannot be read (%1)").arg(config_file.errorString());
        return entry;
    }
    const QByteArray config_text = config_file.readAll();
    entry.model_type = QJsonDocument::fromJson(config_text).object().value("model_type").toString();
    auto config = parse_model_config(config_text.toStdString(), "config.json");
    if (!config) {
        entry.problem = QString::fromStdString(config.error().message);
        return entry;
    }
    // Hub snapshots hold symbolic links into blobs/; a link whose blob is missing is an unfinished download.
    const QStringList weights = dir.entryList({"*.safetensors"}, QDir::Files);
    if (weights.isEmpty()) {
        const bool dangling = !dir.entryList({"*.safetensors"}, QDir::System).isEmpty();
        entry.problem = dangling ? QStringLiteral("the weight files are incomplete (unfinished download?)")
                                 : QStringLiteral("no *.safetensors weights in the folder (GGUF and .bin checkpoints are not supported yet)");
        return entry;
    }
    if (!tokenizer_directory.isEmpty()) {
        if (!QFileInfo(QDir(tokenizer_directory).filePath("tokenizer.json")).isFile()) {
            entry.problem = QStringLiteral("the tokenizer folder chosen for it (%1) has no tokenizer.json").arg(tokenizer_directory);
            entry.missing_tokenizer = true;
            return entry;
        }
        entry.tokenizer_directory = tokenizer_directory;
    } else if (!QFileInfo::exists(dir.filePath("tokenizer.json"))) {
        entry.problem = QStringLiteral("no tokenizer.json in the folder: choose a tokenizer folder for it");
        entry.missing_tokenizer = true;
        return entry;
    }
    entry.supported = true;
    return entry;
}

namespace {

// An added folder that holds no usable model, listed with the reason rather than hidden.
ModelEntry unusable_folder(const QString& folder, const QString& problem) {
    ModelEntry entry;
    entry.path = folder;
    entry.name = QFileInfo(folder).fileName();
    entry.source = QStringLiteral("added folder");
    entry.problem = problem;
    return entry;
}

}  // namespace

LibraryLocations library_locations(const Settings& settings) {
    LibraryLocations locations;
    locations.hub_directory = settings.huggingface_hub_directory();
    locations.folders = settings.model_folders();
    locations.demo_directory = settings.demo_model_directory();
    locations.hidden = settings.hidden_models();
    locations.tokenizer_folders = settings.tokenizer_folders();
    locations.adapter_folders = {QDir(settings.data_directory()).filePath("finetune")};
    return locations;
}

Result<ModelEntry> inspect_adapter_folder(const QString& directory, const QString& source) {
    const QDir dir(directory);
    QFile config_file(dir.filePath("adapter_config.json"));
    if (!config_file.open(QIODevice::ReadOnly)) return make_error("no adapter_config.json");
    if (!QFileInfo::exists(dir.filePath("adapter_model.safetensors"))) return make_error("no adapter_model.safetensors");
    const QJsonObject config = QJsonDocument::fromJson(config_file.read(1 << 20)).object();
    if (config.value("peft_type").toString("LORA") != "LORA") return make_error("not a LoRA adapter");
    ModelEntry entry;
    entry.path = QDir::cleanPath(QFileInfo(directory).absoluteFilePath());
    entry.name = QFileInfo(entry.path).fileName();
    entry.source = source;
    entry.model_type = QStringLiteral("LoRA adapter");
    entry.adapter_base = config.value("base_model_name_or_path").toString();
    if (entry.adapter_base.isEmpty()) entry.adapter_base = QStringLiteral("(base model not named)");
    entry.adapter_rank = config.value("r").toInt();
    entry.adapter_alpha = config.value("lora_alpha").toDouble();
    entry.supported = true;
    return entry;
}

QList<ModelEntry> scan_models(const LibraryLocations& locations) {
    QList<ModelEntry> entries;
    auto inspect = [&](const QString& directory, const QString& source) {
        const QString path = QDir::cleanPath(QFileInfo(directory).absoluteFilePath());
        return inspect_model_folder(directory, source, locations.tokenizer_folders.value(path));
    };
    auto add = [&](const ModelEntry& entry) {
        if (!locations.hidden.contains(entry.path)) entries << entry;
    };
    if (!locations.demo_directory.isEmpty() && is_demo_model(locations.demo_directory)) {
        ModelEntry demo = inspect(locations.demo_directory, QStringLiteral("built-in demo"));
        demo.name = QStringLiteral("Demo model (random weights)");
        add(demo);
    }
    const QDir hub(locations.hub_directory);
    for (const QString& repo : hub.entryList({"models--*"}, QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
        const QString repo_name = repo.mid(QStringLiteral("models--").size()).replace("--", "/");
        const QDir snapshots(hub.filePath(repo + "/snapshots"));
        const QStringList revisions = snapshots.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Time);
        for (const QString& revision : revisions) {
            if (!QFileInfo::exists(snapshots.filePath(revision + "/config.json"))) continue;  // not a model (a dataset, a tokenizer-only repo)
            ModelEntry entry = inspect(snapshots.filePath(revision), QStringLiteral("Hugging Face cache"));
            entry.name = revisions.size() > 1 ? repo_name + " @" + revision.left(8) : repo_name;
            add(entry);
        }
    }
    // Adapters: the Fine-tune page's outputs, and added folders that are adapters or hold adapters.
    QList<ModelEntry> adapters;
    for (const QString& folder : locations.adapter_folders)
        for (const QString& child : QDir(folder).entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Time))
            if (auto adapter = inspect_adapter_folder(QDir(folder).filePath(child), QStringLiteral("fine-tuned here"))) adapters << *adapter;
    for (const QString& folder : locations.folders) {
        const QDir dir(folder);
        if (!dir.exists()) {
            add(unusable_folder(folder, QStringLiteral("the folder no longer exists")));
            continue;
        }
        if (auto adapter = inspect_adapter_folder(folder, QStringLiteral("added folder"))) {
            adapters << *adapter;
            continue;
        }
        for (const QString& child : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name))
            if (auto adapter = inspect_adapter_folder(dir.filePath(child), QStringLiteral("added folder"))) adapters << *adapter;
        if (QFileInfo::exists(dir.filePath("config.json"))) {
            add(inspect(folder, QStringLiteral("added folder")));
            continue;
        }
        bool found = false;
        for (const QString& child : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
            if (!QFileInfo::exists(dir.filePath(child + "/config.json"))) continue;
            add(inspect(dir.filePath(child), QStringLiteral("added folder")));
            found = true;
        }
        const bool holds_adapters = std::any_of(adapters.begin(), adapters.end(), [&](const ModelEntry& a) { return a.path.startsWith(dir.absolutePath()); });
        if (!found && !holds_adapters) add(unusable_folder(folder, QStringLiteral("no config.json in the folder or its subfolders")));
    }
    // Each adapter right after the model it was trained for (or at the end when that model is not listed).
    for (const ModelEntry& adapter : adapters) {
        if (locations.hidden.contains(adapter.path)) continue;
        const QString base = QDir::cleanPath(adapter.adapter_base);
        qsizetype at = entries.size();
        for (qsizetype i = 0; i < entries.size(); ++i)
            if (!entries[i].is_adapter() && entries[i].path == base) at = i + 1;
        entries.insert(at, adapter);
    }
    return entries;
}

Result<ModelCard> describe_model(const QString& directory) {
    auto graph = load_model_graph(directory.toStdString());
    if (!graph) return graph.error();
    const ModelSummary s = summarize(*graph);
    ModelCard card;
    card.path = directory;
    card.is_demo = is_demo_model(directory);
    card.name = card.is_demo ? QStringLiteral("Demo model (random weights)") : QFileInfo(directory).fileName();
    card.architecture = QString::fromStdString(s.architecture);
    card.total_parameters = s.total_parameters;
    card.active_parameters = s.active_parameters;
    card.layers = s.layers;
    card.moe_layers = s.moe_layers;
    card.routed_experts = s.routed_experts;
    card.shared_experts = s.shared_experts;
    card.experts_per_token = s.experts_per_token;
    card.context_length = s.context_length;
    card.weights_dtype = QString::fromStdString(s.weights_dtype);
    card.weight_bytes = qint64(s.weight_bytes);
    card.kv_bytes_per_1k_tokens_bf16 = qint64(s.kv_cache_bytes_per_1k_tokens_bf16);
    card.kv_bytes_per_1k_tokens_f32 = qint64(s.kv_cache_bytes_per_1k_tokens_f32);
    // Hub snapshots link into blobs/: count the files the links point at.
    for (const QFileInfo& file : QDir(directory).entryInfoList(QDir::Files)) card.size_on_disk += QFileInfo(file.canonicalFilePath()).size();
    card.default_sampling = load_generation_defaults(directory).sampling;
    return card;
}

MemoryEstimate estimate_memory(const ModelCard& card, Device device, qint64 context_tokens) {
    const qint64 per_1k = device == Device::Cuda ? card.kv_bytes_per_1k_tokens_bf16 : card.kv_bytes_per_1k_tokens_f32;
    return {card.weight_bytes, per_1k * context_tokens / 1024};
}

QString format_bytes(qint64 bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = double(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 4) value /= 1024, ++unit;
    return unit == 0 ? QStringLiteral("%1 B").arg(bytes) : QStringLiteral("%1 %2").arg(value, 0, 'f', value < 10 ? 2 : 1).arg(units[unit]);
}

QString format_count(qint64 count) {
    if (count >= 1'000'000'000) return QStringLiteral("%1 B").arg(double(count) / 1e9, 0, 'f', 1);
    if (count >= 1'000'000) return QStringLiteral("%1 M").arg(double(count) / 1e6, 0, 'f', 1);
    if (count >= 1'000) return QStringLiteral("%1 K").arg(double(count) / 1e3, 0, 'f', 1);
    return QString::number(count);
}

}  // namespace mwb::app
