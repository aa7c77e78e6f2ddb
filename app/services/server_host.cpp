#include "app/services/server_host.h"

#include <QMetaObject>

#include "app/server/openai_server.h"
#include "app/server/served_model.h"
#include "app/vision/image_file.h"

namespace mwb::app {

// Turns the server's callbacks (on its threads) into the host's queued signals.
class ServerHost::Listener final : public serve::ServerListener {
public:
    explicit Listener(ServerHost* host) : host_(host) {}
    void on_request(const serve::RequestRecord& r) override {
        ServerRequestRow row;
        row.id = r.id;
        row.endpoint = QString::fromStdString(r.endpoint);
        row.model = QString::fromStdString(r.model);
        row.client = QString::fromStdString(r.client);
        row.state = QString::fromStdString(r.state);
        row.finish_reason = QString::fromStdString(r.finish_reason);
        row.stream = r.stream;
        row.status = r.status;
        row.prompt_tokens = r.prompt_tokens;
        row.completion_tokens = r.completion_tokens;
        row.time_to_first_token_s = r.time_to_first_token_s;
        row.decode_tokens_per_s = r.decode_tokens_per_s;
        emit host_->requestUpdated(row);
    }
    void on_log(const std::string& line) override { emit host_->logLine(QString::fromStdString(line)); }

private:
    ServerHost* host_;
};

ServerHost::ServerHost(QObject* parent) : QObject(parent), listener_(std::make_unique<Listener>(this)) {
    qRegisterMetaType<ServerSettings>();
    qRegisterMetaType<ServerRequestRow>();
}

ServerHost::~ServerHost() {
    if (opener_.joinable()) opener_.join();
    if (stopper_.joinable()) stopper_.join();
    std::lock_guard lock(mutex_);
    for (auto* server : {&server_, &opened_server_})
        if (*server) (*server)->stop();
    server_.reset();
    opened_server_.reset();
    model_.reset();
    opened_model_.reset();
}

bool ServerHost::running() const {
    std::lock_guard lock(mutex_);
    return server_ != nullptr;
}

QString ServerHost::url() const {
    std::lock_guard lock(mutex_);
    return server_ ? QString::fromStdString(server_->base_url()) : QString();
}

ServerGauges ServerHost::gauges() const {
    std::lock_guard lock(mutex_);
    ServerGauges g;
    if (!model_) return g;
    const SchedulerStats s = model_->scheduler().stats();
    g.running = s.running;
    g.waiting = s.waiting;
    g.slot_count = s.slot_count;
    g.kv_cache_usage = s.kv_cache_usage();
    g.prompt_tokens = s.prompt_tokens;
    g.generated_tokens = s.generated_tokens;
    g.finished = s.finished;
    return g;
}

QString ServerHost::metrics_text() const {
    std::lock_guard lock(mutex_);
    return server_ ? QString::fromStdString(server_->metrics_text()) : QString();
}

void ServerHost::start(const ServerSettings& settings) {
    if (starting_ || running()) return;
    if (opener_.joinable()) opener_.join();
    if (stopper_.joinable()) stopper_.join();  // the previous server's port is free again
    starting_ = true;
    // Opening a model takes seconds: it runs on a thread of its own and reports back on the GUI thread.
    opener_ = std::thread([this, settings] {
        serve::ServedModelOptions options;
        options.model_dir = settings.model_directory.toStdString();
        options.tokenizer_dir = settings.tokenizer_directory.toStdString();
        options.name = settings.name.toStdString();
        options.device = settings.cuda ? "cuda" : "cpu";
        options.decode_image = read_base64_image;
        options.scheduler.max_running = settings.max_batch;
        options.scheduler.max_queue = settings.max_queue;
        options.scheduler.context = settings.context;
        options.scheduler.prefill_chunk = std::min(256, settings.context);
        options.scheduler.step_tokens = options.scheduler.max_running + options.scheduler.prefill_chunk;
        serve::ServerOptions server_options;
        server_options.host = settings.host.toStdString();
        server_options.port = settings.port;
        server_options.api_key = settings.api_key.toStdString();
        std::unique_ptr<serve::ServedModel> model;
        std::unique_ptr<serve::OpenAiServer> server;
        QString error;
        auto opened = serve::ServedModel::open(options);
        if (!opened) {
            error = QString::fromStdString(opened.error().message);
        } else {
            model = std::move(opened.value());
            auto listening = serve::OpenAiServer::start(*model, server_options, listener_.get());
            if (listening) server = std::move(listening.value());
            else error = QString::fromStdString(listening.error().message);
        }
        {
            std::lock_guard lock(mutex_);
            opened_model_ = std::move(model);
            opened_server_ = std::move(server);
            open_error_ = error;
        }
        // A host deleted before this call arrives joins this thread and stops what it opened.
        QMetaObject::invokeMethod(this, &ServerHost::finish_start, Qt::QueuedConnection);
    });
}

void ServerHost::finish_start() {
    starting_ = false;
    QString address, error;
    {
        std::lock_guard lock(mutex_);
        error = open_error_;
        if (opened_server_) {
            model_ = std::move(opened_model_);
            server_ = std::move(opened_server_);
            address = QString::fromStdString(server_->base_url());
        }
        opened_model_.reset();
    }
    if (address.isEmpty()) emit startFailed(error);
    else emit started(address);
}

void ServerHost::stop() {
    std::unique_ptr<serve::OpenAiServer> server;
    std::unique_ptr<serve::ServedModel> model;
    {
        std::lock_guard lock(mutex_);
        server = std::move(server_);
        model = std::move(model_);
    }
    if (!server) return;
    if (stopper_.joinable()) stopper_.join();
    // Open streams end first, and a client that stopped reading holds its stream up to the write timeout: the
    // GUI does not wait for that.
    stopper_ = std::thread([this, server = std::move(server), model = std::move(model)]() mutable {
        server->stop();
        server.reset();
        model.reset();
        QMetaObject::invokeMethod(this, [this] { emit stopped(); }, Qt::QueuedConnection);
    });
}

}  // namespace mwb::app
