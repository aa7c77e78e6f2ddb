#include "app/services/settings.h"

#include <QDir>
#include <QStandardPaths>

namespace mwb::app {

namespace {
const char* const kLoadingMarker = "session/loading_model";
}

QString device_name(Device device) { return device == Device::Cuda ? QStringLiteral("CUDA GPU") : QStringLiteral("CPU"); }

Settings::Settings() : settings_(std::make_unique<QSettings>()) {}

Settings::Settings(const QString& file_path) : settings_(std::make_unique<QSettings>(file_path, QSettings::IniFormat)) {}

Theme Settings::theme() const { return settings_->value("ui/theme").toString() == "dark" ? Theme::Dark : Theme::Light; }
void Settings::set_theme(Theme theme) { settings_->setValue("ui/theme", theme == Theme::Dark ? "dark" : "light"); }

Device Settings::default_device() const { return settings_->value("engine/device").toString() == "cuda" ? Device::Cuda : Device::Cpu; }
void Settings::set_default_device(Device device) { settings_->setValue("engine/device", device == Device::Cuda ? "cuda" : "cpu"); }

QString Settings::data_directory() const {
    const QString chosen = settings_->value("storage/data_directory").toString();
    return chosen.isEmpty() ? QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) : chosen;
}
void Settings::set_data_directory(const QString& directory) { settings_->setValue("storage/data_directory", directory); }
QString Settings::database_path() const { return QDir(data_directory()).filePath("history.sqlite"); }
QString Settings::image_directory() const { return QDir(data_directory()).filePath("images"); }
QString Settings::demo_model_directory() const { return QDir(data_directory()).filePath("demo-model"); }

SamplingSettings Settings::default_sampling() const {
    SamplingSettings s;
    s.temperature = settings_->value("sampling/temperature", s.temperature).toDouble();
    s.top_p = settings_->value("sampling/top_p", s.top_p).toDouble();
    s.top_k = settings_->value("sampling/top_k", qlonglong(s.top_k)).toLongLong();
    s.min_p = settings_->value("sampling/min_p", s.min_p).toDouble();
    s.repetition_penalty = settings_->value("sampling/repetition_penalty", s.repetition_penalty).toDouble();
    s.max_new_tokens = settings_->value("sampling/max_new_tokens", s.max_new_tokens).toInt();
    s.seed = settings_->value("sampling/seed", qulonglong(s.seed)).toULongLong();
    return s;
}
void Settings::set_default_sampling(const SamplingSettings& s) {
    settings_->setValue("sampling/temperature", s.temperature);
    settings_->setValue("sampling/top_p", s.top_p);
    settings_->setValue("sampling/top_k", qlonglong(s.top_k));
    settings_->setValue("sampling/min_p", s.min_p);
    settings_->setValue("sampling/repetition_penalty", s.repetition_penalty);
    settings_->setValue("sampling/max_new_tokens", s.max_new_tokens);
    settings_->setValue("sampling/seed", qulonglong(s.seed));
}

QString Settings::system_prompt() const { return settings_->value("chat/system_prompt").toString(); }
void Settings::set_system_prompt(const QString& prompt) { settings_->setValue("chat/system_prompt", prompt); }
// Per-model values live in one map each: a folder path is not a valid QSettings key.
int Settings::context_length(const QString& model) const {
    return settings_->value("models/context_lengths").toMap().value(model, 0).toInt();
}
void Settings::set_context_length(const QString& model, int tokens) {
    QVariantMap lengths = settings_->value("models/context_lengths").toMap();
    lengths.insert(model, tokens);
    settings_->setValue("models/context_lengths", lengths);
}

ContextOverflow Settings::context_overflow() const {
    const QString policy = settings_->value("chat/context_overflow").toString();
    return policy == "drop_oldest" ? ContextOverflow::DropOldestTurns
           : policy == "truncate_middle" ? ContextOverflow::TruncateMiddle
                                         : ContextOverflow::Refuse;
}
void Settings::set_context_overflow(ContextOverflow policy) {
    settings_->setValue("chat/context_overflow", policy == ContextOverflow::DropOldestTurns  ? "drop_oldest"
                                                 : policy == ContextOverflow::TruncateMiddle ? "truncate_middle"
                                                                                             : "refuse");
}
qint64 Settings::last_chat() const { return settings_->value("chat/last_run", 0).toLongLong(); }
void Settings::set_last_chat(qint64 run_id) { settings_->setValue("chat/last_run", run_id); }

RemoteEndpoint Settings::remote_endpoint() const {
    return {settings_->value("remote/base_url").toString(), settings_->value("remote/api_key").toString(),
            settings_->value("remote/model").toString()};
}
void Settings::set_remote_endpoint(const RemoteEndpoint& endpoint) {
    settings_->setValue("remote/base_url", endpoint.base_url);
    settings_->setValue("remote/api_key", endpoint.api_key);
    settings_->setValue("remote/model", endpoint.model);
}

QString Settings::last_model() const { return settings_->value("models/last").toString(); }
void Settings::set_last_model(const QString& path) { settings_->setValue("models/last", path); }
QStringList Settings::model_folders() const { return settings_->value("models/folders").toStringList(); }
void Settings::set_model_folders(const QStringList& folders) { settings_->setValue("models/folders", folders); }
QStringList Settings::hidden_models() const { return settings_->value("models/hidden").toStringList(); }
void Settings::set_hidden_models(const QStringList& paths) { settings_->setValue("models/hidden", paths); }
QString Settings::tokenizer_folder(const QString& model) const { return tokenizer_folders().value(model); }
void Settings::set_tokenizer_folder(const QString& model, const QString& folder) {
    QVariantMap folders = settings_->value("models/tokenizer_folders").toMap();
    if (folder.isEmpty()) folders.remove(model);
    else folders.insert(model, folder);
    settings_->setValue("models/tokenizer_folders", folders);
}
QHash<QString, QString> Settings::tokenizer_folders() const {
    QHash<QString, QString> folders;
    const QVariantMap stored = settings_->value("models/tokenizer_folders").toMap();
    for (auto it = stored.begin(); it != stored.end(); ++it) folders.insert(it.key(), it.value().toString());
    return folders;
}

QString Settings::huggingface_hub_directory() const {
    const QString chosen = settings_->value("models/hub_directory").toString();
    if (!chosen.isEmpty()) return chosen;
    if (const QString hub = qEnvironmentVariable("HF_HUB_CACHE"); !hub.isEmpty()) return hub;
    if (const QString home = qEnvironmentVariable("HF_HOME"); !home.isEmpty()) return QDir(home).filePath("hub");
    // As huggingface_hub resolves it: $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
    if (const QString cache = qEnvironmentVariable("XDG_CACHE_HOME"); !cache.isEmpty()) return QDir(cache).filePath("huggingface/hub");
    return QDir::home().filePath(".cache/huggingface/hub");
}
void Settings::set_huggingface_hub_directory(const QString& directory) { settings_->setValue("models/hub_directory", directory); }

QByteArray Settings::window_geometry() const { return settings_->value("ui/geometry").toByteArray(); }
QByteArray Settings::window_state() const { return settings_->value("ui/state").toByteArray(); }
void Settings::set_window_layout(const QByteArray& geometry, const QByteArray& state) {
    settings_->setValue("ui/geometry", geometry);
    settings_->setValue("ui/state", state);
}

void Settings::begin_model_load(const QString& path) {
    settings_->setValue(kLoadingMarker, path);
    settings_->sync();  // on disk before the load can crash the process
}
void Settings::end_model_load() {
    settings_->remove(kLoadingMarker);
    settings_->sync();
}
QString Settings::model_load_in_progress() const { return settings_->value(kLoadingMarker).toString(); }

void Settings::sync() { settings_->sync(); }

}  // namespace mwb::app
