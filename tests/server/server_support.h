// Shared by the server suites: a served model behind a started server on a free loopback port, with a listener
// that records its requests.
#pragma once

#include <QtTest>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "app/server/openai_client.h"
#include "app/server/openai_server.h"
#include "app/server/served_model.h"

namespace mwb::serve::testing {

// Records what the server tells its listener.
class Recorder final : public ServerListener {
public:
    void on_request(const RequestRecord& record) override {
        std::lock_guard lock(mutex_);
        records_[record.id] = record;
    }
    std::map<int64_t, RequestRecord> records() {
        std::lock_guard lock(mutex_);
        return records_;
    }

private:
    std::mutex mutex_;
    std::map<int64_t, RequestRecord> records_;
};

struct Running {
    Recorder recorder;  // first: the server reports to it until it has stopped
    std::unique_ptr<ServedModel> model;
    std::unique_ptr<OpenAiServer> server;
    OpenAiClient client(const std::string& key = {}) const { return OpenAiClient(server->base_url(), key); }
};

inline std::unique_ptr<Running> start_server(const std::string& model_dir, const std::string& tokenizer_dir, SchedulerOptions scheduler,
                                             ServerOptions server = {}, decltype(ServedModelOptions::decode_image) decode_image = {}) {
    auto running = std::make_unique<Running>();
    ServedModelOptions options;
    options.decode_image = std::move(decode_image);
    options.model_dir = model_dir;
    options.tokenizer_dir = tokenizer_dir;
    options.name = "test-model";
    options.threads = 2;
    options.scheduler = scheduler;
    auto model = ServedModel::open(options);
    if (!model) qFatal("%s", model.error().message.c_str());
    running->model = std::move(model.value());
    server.port = 0;
    auto started = OpenAiServer::start(*running->model, server, &running->recorder);
    if (!started) qFatal("%s", started.error().message.c_str());
    running->server = std::move(started.value());
    return running;
}

inline SchedulerOptions scheduler_with(int64_t running, int64_t queue, int64_t context = 256) {
    SchedulerOptions s;
    s.max_running = running;
    s.max_queue = queue;
    s.context = context;
    s.prefill_chunk = 64;
    s.step_tokens = running + 64;
    return s;
}

}  // namespace mwb::serve::testing
