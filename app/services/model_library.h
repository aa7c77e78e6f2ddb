// Finds model folders: Hugging Face hub cache snapshots, folders the user added, the built-in demo model.
// Every folder with a config.json is listed; the ones the engine cannot run say why.
#pragma once

#include <QHash>
#include <QList>
#include <QString>
#include <QStringList>

#include "app/services/chat_types.h"
#include "app/services/settings.h"
#include "engine/core/result.h"

namespace mwb::app {

struct ModelEntry {
    QString path;
    QString name;    // "org/name" for hub snapshots, the folder name otherwise
    QString source;  // "Hugging Face cache", "added folder", "built-in demo"
    QString model_type;
    bool supported = false;
    QString problem;  // why it cannot be loaded, when !supported
    bool is_demo = false;
    bool missing_tokenizer = false;  // the folder has no tokenizer.json and none was chosen for it
    QString tokenizer_directory;     // where its tokenizer is read from: the folder itself or the one chosen
    // A LoRA adapter (a PEFT adapter folder) rather than a model: the base model it was trained for, its rank
    // and alpha, as adapter_config.json says.
    QString adapter_base;
    int adapter_rank = 0;
    double adapter_alpha = 0;
    bool is_adapter() const { return !adapter_base.isEmpty(); }
};

// Where the library looks, and what the user changed about its list.
struct LibraryLocations {
    QString hub_directory;   // models--org--name/snapshots/<revision>/ folders
    QStringList folders;     // each a model folder itself, or holding model folders one level down
    QString demo_directory;  // listed when it holds the demo model
    QStringList hidden;      // model folders removed from the list
    QHash<QString, QString> tokenizer_folders;  // model folder → the folder its tokenizer comes from
    QStringList adapter_folders;  // folders of adapters (the Fine-tune page's output), one level down
};

// A folder that holds `demo_model.json` was written by DemoModel.
bool is_demo_model(const QString& directory);

// Checks one folder without reading weights: config.json (parsed by the engine), weights and a tokenizer
// present (its own, or tokenizer.json in `tokenizer_directory` when one was chosen).
ModelEntry inspect_model_folder(const QString& directory, const QString& source, const QString& tokenizer_directory = {});

// The locations the user's settings give: the hub cache, added folders, the demo, hidden entries, chosen
// tokenizer folders, and the Fine-tune page's output folder for adapters.
LibraryLocations library_locations(const Settings& settings);

// A PEFT adapter folder (adapter_config.json and adapter_model.safetensors), or an error saying what it lacks.
Result<ModelEntry> inspect_adapter_folder(const QString& directory, const QString& source);

// Every model folder of the locations but the hidden ones; adapters follow the model they were trained for.
QList<ModelEntry> scan_models(const LibraryLocations& locations);

struct ModelCard {
    QString path;
    QString name;
    QString architecture;
    qint64 total_parameters = 0;
    qint64 active_parameters = 0;
    qint64 layers = 0, moe_layers = 0;
    qint64 routed_experts = 0, shared_experts = 0, experts_per_token = 0;
    qint64 context_length = 0;
    QString weights_dtype;
    qint64 weight_bytes = 0;
    qint64 size_on_disk = 0;
    qint64 kv_bytes_per_1k_tokens_bf16 = 0;
    qint64 kv_bytes_per_1k_tokens_f32 = 0;
    bool is_demo = false;
    SamplingSettings default_sampling;
};

// Maps the weights (no copy) to count parameters; safe to call off the GUI thread.
Result<ModelCard> describe_model(const QString& directory);

struct MemoryEstimate {
    qint64 weight_bytes = 0;
    qint64 kv_cache_bytes = 0;
    qint64 total() const { return weight_bytes + kv_cache_bytes; }
};

// The CPU backend keeps the KV cache in float32, the CUDA backend in bf16; weights stay in their stored dtype.
MemoryEstimate estimate_memory(const ModelCard& card, Device device, qint64 context_tokens);

QString format_bytes(qint64 bytes);
QString format_count(qint64 count);  // 1.2 B, 340 M, 12 K

}  // namespace mwb::app
