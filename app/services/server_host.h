// The local OpenAI-compatible server as the app runs it: the model opened and the server started off the
// GUI thread, its requests and log lines delivered to the GUI as queued signals, its counters on demand.
// The server opens its own copy of the model folder (on the CPU the weights are memory-mapped, so the copy
// shares them with Chat's; on CUDA each holds its own).
#pragma once

#include <QMetaType>
#include <QObject>
#include <QString>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

namespace mwb::serve {
class OpenAiServer;
class ServedModel;
}  // namespace mwb::serve

namespace mwb::app {

struct ServerSettings {
    QString model_directory;
    QString tokenizer_directory;  // empty: the model folder's own
    QString name;                 // the model id clients send; the folder's name when empty
    QString host = "127.0.0.1";
    int port = 8080;              // 0: any free port
    QString api_key;
    int max_batch = 8;
    int max_queue = 64;
    int context = 4096;
    bool cuda = false;
};

// One row of the Server page's table.
struct ServerRequestRow {
    qint64 id = 0;
    QString endpoint, model, client, state, finish_reason;
    bool stream = false;
    int status = 200;
    qint64 prompt_tokens = 0, completion_tokens = 0;
    double time_to_first_token_s = 0, decode_tokens_per_s = 0;
};

struct ServerGauges {
    qint64 running = 0, waiting = 0, slot_count = 0;
    double kv_cache_usage = 0;
    qint64 prompt_tokens = 0, generated_tokens = 0, finished = 0;
};

class ServerHost : public QObject {
    Q_OBJECT
public:
    explicit ServerHost(QObject* parent = nullptr);
    ~ServerHost() override;  // stops a running server and waits for it

    bool running() const;
    bool busy() const { return starting_.load(); }
    QString url() const;
    ServerGauges gauges() const;
    QString metrics_text() const;

public slots:
    void start(const mwb::app::ServerSettings& settings);
    void stop();  // returns at once; stopped() follows when the server and its model are gone

signals:
    void started(QString url);
    void startFailed(QString message);
    void stopped();
    void requestUpdated(mwb::app::ServerRequestRow row);
    void logLine(QString line);

private:
    class Listener;
    void finish_start();  // on the GUI thread, once the opener thread is done

    std::unique_ptr<Listener> listener_;
    mutable std::mutex mutex_;  // guards model_ and server_ against gauges() during start and stop
    std::unique_ptr<serve::ServedModel> model_;
    std::unique_ptr<serve::OpenAiServer> server_;
    // What the opener thread made, until finish_start() takes it (or the error it met).
    std::unique_ptr<serve::ServedModel> opened_model_;
    std::unique_ptr<serve::OpenAiServer> opened_server_;
    QString open_error_;
    std::thread opener_;
    std::thread stopper_;  // stops a server off the GUI thread
    std::atomic<bool> starting_{false};
};

}  // namespace mwb::app

Q_DECLARE_METATYPE(mwb::app::ServerSettings)
Q_DECLARE_METATYPE(mwb::app::ServerRequestRow)
