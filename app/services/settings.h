// The user's preferences (QSettings) and the crash-safe start marker.
#pragma once

#include <QByteArray>
#include <QHash>
#include <QSettings>
#include <QString>
#include <QStringList>
#include <memory>

#include "app/services/chat_types.h"
#include "app/services/remote_chat.h"

namespace mwb::app {

enum class Theme { Light, Dark };
enum class Device { Cpu, Cuda };

QString device_name(Device device);

class Settings {
public:
    // The platform's settings store of the application.
    Settings();
    // An INI file at `file_path` (tests, portable installs).
    explicit Settings(const QString& file_path);

    Theme theme() const;
    void set_theme(Theme theme);
    Device default_device() const;
    void set_default_device(Device device);
    // Where the run history and the demo model live; the platform's app data location unless changed.
    QString data_directory() const;
    void set_data_directory(const QString& directory);
    QString database_path() const;
    QString image_directory() const;  // images attached to messages (the ImageStore)
    QString demo_model_directory() const;
    SamplingSettings default_sampling() const;
    void set_default_sampling(const SamplingSettings& sampling);
    QString system_prompt() const;
    void set_system_prompt(const QString& prompt);
    // The context chosen for a model folder; 0: none chosen (the model's own, capped by the app).
    int context_length(const QString& model) const;
    void set_context_length(const QString& model, int tokens);
    ContextOverflow context_overflow() const;
    void set_context_overflow(ContextOverflow policy);
    qint64 last_chat() const;  // the run id of the chat shown last, reopened at launch; 0: none
    void set_last_chat(qint64 run_id);

    // The remote OpenAI-compatible endpoint chatted with last (its key too, in this settings file).
    RemoteEndpoint remote_endpoint() const;
    void set_remote_endpoint(const RemoteEndpoint& endpoint);

    QString last_model() const;
    void set_last_model(const QString& path);
    QStringList model_folders() const;  // folders the user added to the library
    void set_model_folders(const QStringList& folders);
    QStringList hidden_models() const;  // model folders removed from the library's list (their files stay)
    void set_hidden_models(const QStringList& paths);
    // A folder holding tokenizer.json (+ tokenizer_config.json) for a model folder that has none; empty: none.
    QString tokenizer_folder(const QString& model) const;
    void set_tokenizer_folder(const QString& model, const QString& folder);
    QHash<QString, QString> tokenizer_folders() const;
    // The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
    QString huggingface_hub_directory() const;
    void set_huggingface_hub_directory(const QString& directory);

    QByteArray window_geometry() const;
    QByteArray window_state() const;
    void set_window_layout(const QByteArray& geometry, const QByteArray& state);

    // Crash-safe start: the marker is written (and synced to disk) before a model load begins and removed when
    // it ends either way. Present at start-up, it means the previous session died while loading that model.
    void begin_model_load(const QString& path);
    void end_model_load();
    QString model_load_in_progress() const;

    void sync();

private:
    std::unique_ptr<QSettings> settings_;
};

}  // namespace mwb::app
