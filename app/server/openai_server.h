// The local OpenAI-compatible HTTP server (cpp-httplib) in front of a ServedModel's scheduler:
// GET /v1/models, POST /v1/chat/completions and /v1/completions (SSE streaming or whole), GET /health and
// GET /metrics. /v1/* asks for the API key when one is set; a bind beyond loopback requires one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "app/server/served_model.h"
#include "engine/core/result.h"

namespace mwb::serve {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;              // 0: any free port
    std::string api_key;          // empty: no key (loopback only)
    size_t max_body_bytes = 8 << 20;
};

// One request as the Server page's table shows it.
struct RequestRecord {
    int64_t id = 0;
    std::string endpoint, model, client;
    bool stream = false;
    std::string state;  // "queued", "running", "done", "cancelled", "failed"
    int status = 200;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    double time_to_first_token_s = 0, decode_tokens_per_s = 0;
    std::string finish_reason;
};

// Told about requests and log lines, from the server's threads.
class ServerListener {
public:
    virtual ~ServerListener() = default;
    virtual void on_request(const RequestRecord& record) { (void)record; }
    virtual void on_log(const std::string& line) { (void)line; }
};

class OpenAiServer {
public:
    // Binds and starts listening on a thread of its own; fails with the reason when it cannot bind.
    static Result<std::unique_ptr<OpenAiServer>> start(ServedModel& model, const ServerOptions& options,
                                                       ServerListener* listener = nullptr);
    ~OpenAiServer();  // stop()
    OpenAiServer(const OpenAiServer&) = delete;
    OpenAiServer& operator=(const OpenAiServer&) = delete;

    int port() const;
    std::string base_url() const;  // http://host:port
    std::string metrics_text() const;
    // Stops listening, ends open streams and cancels their requests, waits for the threads.
    void stop();

private:
    struct Impl;
    explicit OpenAiServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

bool is_loopback_host(const std::string& host);
// An address beyond loopback opens the server to other machines: it needs an API key.
Status check_bind_address(const std::string& host, const std::string& api_key);

}  // namespace mwb::serve
