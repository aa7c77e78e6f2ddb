#include "app/server/openai_server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <set>
#include <sys/socket.h>
#include <span>
#include <thread>
#include <vector>

#include "app/server/openai_api.h"
#include "app/server/prometheus_metrics.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/runtime/stop_strings.h"
#include "engine/tokenizer/streaming_detokenizer.h"

namespace mwb::serve {

using nlohmann::json;

namespace {

// How long a stream waits for text before it writes an SSE comment, which finds out whether the client is
// still there (a write to a closed connection fails) and keeps proxies from timing out.
constexpr auto kKeepAliveInterval = std::chrono::seconds(2);

bool same_secret(const std::string& given, const std::string& expected) {
    // Compares every byte whatever the first mismatch, so timing tells nothing about the key.
    unsigned char difference = given.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < given.size(); ++i) difference |= uint8_t(given[i] ^ expected[i % std::max<size_t>(1, expected.size())]);
    return difference == 0;
}

void reply_error(httplib::Response& res, const ApiError& error) {
    res.status = error.status;
    res.set_content(error_body(error), "application/json");
}

std::string sse(const json& payload) { return "data: " + payload.dump() + "\n\n"; }

// One completion request, shared by the HTTP thread that answers it and the scheduler thread that runs it.
struct Exchange {
    Exchange(const tok::Tokenizer& tokenizer, std::vector<std::string> stops)
        : detokenizer(tokenizer, /*skip_special_tokens=*/true), stop_strings(std::move(stops)) {}

    std::mutex mutex;
    std::condition_variable changed;
    std::string text;  // produced, not yet taken
    bool finished = false;
    bool server_stopping = false;
    RequestOutcome outcome;
    int64_t scheduler_id = -1;
    RequestRecord record;

    // The scheduler thread's own.
    tok::StreamingDetokenizer detokenizer;
    StopStringFilter stop_strings;
};

}  // namespace

struct OpenAiServer::Impl {
    ServedModel& model;
    ServerOptions options;
    ServerListener* listener;
    httplib::Server http;
    std::thread thread;
    int port = 0;
    socket_t listening_socket = -1;
    std::atomic<bool> listen_returned{false};
    std::atomic<int64_t> next_request{1};

    mutable std::mutex counts_mutex;
    HttpCounts counts;
    std::mutex live_mutex;
    std::vector<std::weak_ptr<Exchange>> live;
    bool stopped = false;
    // Accepted requests whose end has not been recorded yet: their callbacks use this object, so stop()
    // waits for them.
    std::mutex active_mutex;
    std::condition_variable all_ended;
    int64_t active = 0;

    Impl(ServedModel& m, const ServerOptions& o, ServerListener* l) : model(m), options(o), listener(l) {}

    void log(const std::string& line) {
        if (listener) listener->on_log(line);
    }
    void report(const RequestRecord& record) {
        if (listener) listener->on_request(record);
    }
    // Counted before the answer is written, so that a client that has its answer finds it in /metrics.
    void count(const httplib::Request& req, int status) {
        static const std::set<std::string> known = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/health", "/metrics"};
        std::lock_guard lock(counts_mutex);
        ++counts.by_endpoint_and_status[{known.count(req.path) ? req.path : "other", status > 0 ? status : 200}];  // unset means 200
    }

    std::string metrics_text() const {
        MetricsSnapshot snapshot{model.name(), model.backend_name(), model.scheduler().stats(), {}};
        {
            std::lock_guard lock(counts_mutex);
            snapshot.http = counts;
        }
        return prometheus_text(snapshot);
    }
    void install_routes();
    void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
    // The prompt's ids and, for images in the messages, the features their image tokens take.
    std::optional<ApiError> prompt_ids(const CompletionParams& params, std::vector<int32_t>& ids, EmbeddingOverrides& images,
                                       bool& starts_in_reasoning) const;
    void stream(httplib::Response& res, std::shared_ptr<Exchange> exchange, const ResponseHead& head, bool include_usage,
                bool starts_in_reasoning);
    void answer_whole(httplib::Response& res, const std::shared_ptr<Exchange>& exchange, const ResponseHead& head,
                      bool starts_in_reasoning);
    void finish_record(Exchange& exchange);
};

bool is_loopback_host(const std::string& host) {
    return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Status check_bind_address(const std::string& host, const std::string& api_key) {
    if (is_loopback_host(host) || !api_key.empty()) return {};
    return make_error("listening on " + host + " opens the server to other machines: give an API key (--api-key KEY) or listen on 127.0.0.1");
}

Result<std::unique_ptr<OpenAiServer>> OpenAiServer::start(ServedModel& model, const ServerOptions& options, ServerListener* listener) {
    MWB_TRY(check_bind_address(options.host, options.api_key));
    if (options.port < 0 || options.port > 65535) return make_error("the port must be between 0 and 65535");
    // A client that hangs up mid-stream must cost a failed write, not the process.
    std::signal(SIGPIPE, SIG_IGN);
    auto impl = std::make_unique<Impl>(model, options, listener);
    const auto threads = size_t(model.scheduler().options().max_running + model.scheduler().options().max_queue + 8);
    impl->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    impl->http.set_payload_max_length(options.max_body_bytes);
    // cpp-httplib listens with a backlog of 5, so a burst of clients connecting at once loses connections.
    // The listening socket is remembered here and listen() called again on it with the system's maximum.
    impl->http.set_socket_options([raw = impl.get()](socket_t socket) {
        httplib::default_socket_options(socket);
        raw->listening_socket = socket;
    });
    impl->install_routes();
    if (options.port == 0) {
        impl->port = impl->http.bind_to_any_port(options.host);
        if (impl->port <= 0) return make_error("cannot listen on " + options.host + ": the address is not one of this machine's");
    } else {
        if (!impl->http.bind_to_port(options.host, options.port))
            return make_error("cannot listen on " + options.host + ":" + std::to_string(options.port) +
                              ": the port is in use or the address is not one of this machine's");
        impl->port = options.port;
    }
    if (impl->listening_socket >= 0) ::listen(impl->listening_socket, SOMAXCONN);
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] {
        raw->http.listen_after_bind();
        raw->listen_returned = true;
    });
    // stop() only stops a server that has begun listening; wait for that, or for it to have failed.
    while (!raw->http.is_running() && !raw->listen_returned) std::this_thread::yield();
    raw->log("serving " + model.name() + " on " + model.backend_name() + " at http://" + options.host + ":" + std::to_string(raw->port) +
             (options.api_key.empty() ? "" : " (API key required)"));
    return std::unique_ptr<OpenAiServer>(new OpenAiServer(std::move(impl)));
}

OpenAiServer::OpenAiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OpenAiServer::~OpenAiServer() { stop(); }

int OpenAiServer::port() const { return impl_->port; }

std::string OpenAiServer::base_url() const {
    const std::string& host = impl_->options.host;
    return "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(impl_->port);
}

std::string OpenAiServer::metrics_text() const { return impl_->metrics_text(); }

void OpenAiServer::stop() {
    {
        std::lock_guard lock(impl_->live_mutex);
        if (impl_->stopped) return;
        impl_->stopped = true;
        for (auto& weak : impl_->live)
            if (auto exchange = weak.lock()) {
                std::lock_guard exchange_lock(exchange->mutex);
                exchange->server_stopping = true;
                exchange->changed.notify_all();
                impl_->model.scheduler().cancel(exchange->scheduler_id);
            }
    }
    impl_->http.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
    // The scheduler ends the cancelled requests at its next step.
    std::unique_lock lock(impl_->active_mutex);
    impl_->all_ended.wait(lock, [&] { return impl_->active == 0; });
    lock.unlock();
    impl_->log("stopped");
}

void OpenAiServer::Impl::install_routes() {
    // Browser-based chat front-ends call the API from another origin: allow it, as vLLM's and llama.cpp's servers
    // do (the API key still guards /v1/ when one is set).
    http.set_default_headers({{"Access-Control-Allow-Origin", "*"},
                              {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                              {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"}});
    http.Options(R"(/.*)", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (options.api_key.empty() || req.path.rfind("/v1/", 0) != 0 || req.method == "OPTIONS")
            return httplib::Server::HandlerResponse::Unhandled;
        const std::string given = req.get_header_value("Authorization");
        const std::string bearer = "Bearer ";
        ApiError error{401, "", "authentication_error", "", "invalid_api_key"};
        if (given.empty()) error.message = "this server needs an API key: send the header 'Authorization: Bearer KEY'";
        else if (given.rfind(bearer, 0) != 0 || !same_secret(given.substr(bearer.size()), options.api_key))
            error.message = "the API key is not valid";
        else return httplib::Server::HandlerResponse::Unhandled;
        reply_error(res, error);
        count(req, error.status);
        return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        ApiError error{res.status, "", "invalid_request_error", "", ""};
        if (res.status == 413) error.message = "the request body is larger than this server's limit of " + std::to_string(options.max_body_bytes) + " bytes";
        else if (res.status == 404)
            error.message = "no such endpoint: " + req.method + " " + req.path +
                            " (this server answers GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health, GET /metrics)";
        else error.message = "the request could not be read (HTTP " + std::to_string(res.status) + ")";
        reply_error(res, error);
        count(req, error.status);
    });
    http.Get("/health", [this](const httplib::Request& req, httplib::Response& res) {
        const SchedulerStats stats = model.scheduler().stats();
        res.set_content(json{{"status", "ok"}, {"model", model.name()}, {"backend", model.backend_name()}, {"running", stats.running},
                             {"waiting", stats.waiting}, {"slots", stats.slot_count}}
                            .dump(),
                        "application/json");
        count(req, res.status);
    });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
        count(req, 200);
        res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
        json data = json::array();
        for (const auto& name : model.model_names())
            data.push_back({{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "moe-workbench"},
                            {"root", model.name()}, {"max_model_len", model.scheduler().options().context}});
        res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
        count(req, res.status);
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
        handle_completion(req, res, true);
        count(req, res.status);
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
        handle_completion(req, res, false);
        count(req, res.status);
    });
}

std::optional<ApiError> OpenAiServer::Impl::prompt_ids(const CompletionParams& params, std::vector<int32_t>& ids,
                                                       EmbeddingOverrides& images, bool& starts_in_reasoning) const {
    const tok::Tokenizer& tokenizer = model.tokenizer();
    starts_in_reasoning = false;
    if (params.chat) {
        const bool has_images = std::any_of(params.images.begin(), params.images.end(), [](const auto& m) { return !m.empty(); });
        std::vector<tok::ChatMessage> marked;  // the messages with image placeholders, only when there are images
        if (has_images) {
            marked = params.messages;
            if (Status status = model.mark_images(marked, params.images); !status)
                return ApiError{400, status.error().message, "invalid_request_error", "messages", ""};
        }
        auto encoded = chat_prompt_ids(tokenizer, has_images ? marked : params.messages);
        if (!encoded) return ApiError{400, encoded.error().message, "invalid_request_error", "messages", ""};
        ids = std::move(encoded.value());
        if (has_images) {
            auto embeddings = model.image_embeddings(ids, params.images);
            if (!embeddings) return ApiError{400, embeddings.error().message, "invalid_request_error", "messages", ""};
            images = std::move(embeddings.value());
        }
        // R1's template ends the prompt with "<think>\n": the reply starts inside its reasoning.
        const size_t tail = std::min<size_t>(ids.size(), 4);
        std::string end = tokenizer.decode(std::span<const int32_t>(ids).subspan(ids.size() - tail), false);
        while (!end.empty() && std::isspace(static_cast<unsigned char>(end.back()))) end.pop_back();
        starts_in_reasoning = end.size() >= 7 && end.compare(end.size() - 7, 7, "<think>") == 0;
    } else if (!params.prompt_ids.empty()) {
        ids = params.prompt_ids;
        for (int32_t id : ids)
            if (id >= model.config().vocab_size)
                return ApiError{400, "token id " + std::to_string(id) + " in 'prompt' is outside the vocabulary of " +
                                         std::to_string(model.config().vocab_size), "invalid_request_error", "prompt", ""};
    } else {
        auto encoded = tokenizer.encode(params.prompt_text, true);
        if (!encoded) return ApiError{400, encoded.error().message, "invalid_request_error", "prompt", ""};
        ids = std::move(encoded.value());
    }
    const int64_t context = model.scheduler().options().context;
    const int64_t prompt = int64_t(ids.size());
    if (prompt == 0) return ApiError{400, "the prompt has no tokens", "invalid_request_error", params.chat ? "messages" : "prompt", ""};
    if (prompt >= context)
        return ApiError{400, "the prompt has " + std::to_string(prompt) + " tokens; this server's context is " + std::to_string(context) +
                                 " tokens, which must also hold the reply", "invalid_request_error", params.chat ? "messages" : "prompt",
                        "context_length_exceeded"};
    if (params.max_tokens && *params.max_tokens > context - prompt)
        return ApiError{400, "'max_tokens' is " + std::to_string(*params.max_tokens) + ", but the prompt's " + std::to_string(prompt) +
                                 " tokens leave room for " + std::to_string(context - prompt) + " in the context of " + std::to_string(context),
                        "invalid_request_error", "max_tokens", "context_length_exceeded"};
    return std::nullopt;
}

void OpenAiServer::Impl::handle_completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    CompletionParams params;
    if (auto error = parse_completion_request(req.body, chat, model.default_sampling(), params)) return reply_error(res, *error);
    const LowRankDeltas* adapter = nullptr;
    if (!model.resolve(params.model, adapter)) {
        std::string served;
        for (const auto& name : model.model_names()) served += (served.empty() ? "'" : ", '") + name + "'";
        return reply_error(res, {404, "the model '" + params.model + "' is not served here; this server serves " + served,
                                 "invalid_request_error", "model", "model_not_found"});
    }
    std::vector<int32_t> ids;
    EmbeddingOverrides images;
    bool starts_in_reasoning = false;
    if (auto error = prompt_ids(params, ids, images, starts_in_reasoning)) return reply_error(res, *error);

    auto exchange = std::make_shared<Exchange>(model.tokenizer(), params.stop);
    RequestRecord& record = exchange->record;
    record.id = next_request++;
    record.endpoint = req.path;
    record.model = params.model.empty() ? model.name() : params.model;
    record.client = req.remote_addr;
    record.stream = params.stream;
    record.state = "queued";
    record.prompt_tokens = int64_t(ids.size());

    ScheduledRequest request;
    request.prompt = std::move(ids);
    request.sampling = params.sampling;
    request.max_new_tokens = params.max_tokens.value_or(model.scheduler().options().context - record.prompt_tokens);
    if (!params.ignore_eos) request.stop_tokens = model.stop_tokens();
    request.adapter = adapter;
    request.prompt_embeddings = std::move(images);

    RequestEvents events;
    // The scheduler holds the exchange until the request ends, so that its end is recorded even when the
    // client has gone.
    events.on_token = [this, ex = exchange](int32_t token) {
        const StopStringFilter::Piece piece = ex->stop_strings.push(ex->detokenizer.push(token));
        bool first = false;
        {
            std::lock_guard lock(ex->mutex);
            ex->text += piece.text;
            first = ex->record.state == "queued";
            if (first) ex->record.state = "running";
            ex->changed.notify_all();
        }
        if (first) report(ex->record);
        return piece.stopped ? TokenVerdict::Stop : TokenVerdict::Continue;
    };
    events.on_finish = [this, ex = exchange](const RequestOutcome& outcome) {
        const std::string rest = ex->stop_strings.push(ex->detokenizer.finish()).text + ex->stop_strings.finish();
        {
            std::lock_guard lock(ex->mutex);
            ex->text += rest;
            ex->outcome = outcome;
            ex->finished = true;
            ex->changed.notify_all();
        }
        finish_record(*ex);
        std::lock_guard lock(active_mutex);
        --active;
        all_ended.notify_all();
    };

    {
        // The exchange stays locked until the queued record is out, so that the listener hears "queued" first.
        std::lock_guard lock(live_mutex);
        if (stopped) return reply_error(res, {503, "the server is stopping", "server_error", "", ""});
        std::lock_guard exchange_lock(exchange->mutex);
        const Submission submission = model.scheduler().submit(std::move(request), std::move(events));
        if (!submission.accepted()) {
            if (submission.status == SubmitStatus::QueueFull)
                return reply_error(res, {429, submission.message, "rate_limit_error", "", "too_many_requests"});
            if (submission.status == SubmitStatus::Stopped) return reply_error(res, {503, submission.message, "server_error", "", ""});
            return reply_error(res, {400, submission.message, "invalid_request_error", "", ""});
        }
        exchange->scheduler_id = submission.id;
        {
            std::lock_guard active_lock(active_mutex);
            ++active;
        }
        live.erase(std::remove_if(live.begin(), live.end(), [](const auto& w) { return w.expired(); }), live.end());
        live.push_back(exchange);
        report(record);
    }

    const ResponseHead head{(chat ? "chatcmpl-" : "cmpl-") + std::to_string(record.id), int64_t(std::time(nullptr)), record.model, chat};
    if (params.stream) stream(res, exchange, head, params.include_usage, starts_in_reasoning);
    else answer_whole(res, exchange, head, starts_in_reasoning);
}

namespace {

Usage usage_of(const RequestOutcome& outcome) {
    return {outcome.timings.prompt_tokens, outcome.timings.generated_tokens, outcome.timings.time_to_first_token_s,
            outcome.timings.decode_tokens_per_s()};
}

}  // namespace

void OpenAiServer::Impl::answer_whole(httplib::Response& res, const std::shared_ptr<Exchange>& exchange, const ResponseHead& head,
                                      bool starts_in_reasoning) {
    std::unique_lock lock(exchange->mutex);
    exchange->changed.wait(lock, [&] { return exchange->finished; });
    const RequestOutcome outcome = exchange->outcome;
    const std::string text = std::move(exchange->text);
    lock.unlock();
    if (outcome.error) return reply_error(res, {500, "the model failed: " + outcome.error->message, "server_error", "", ""});
    if (outcome.finish == FinishReason::Cancelled) return reply_error(res, {503, "the request was cancelled: the server is stopping", "server_error", "", ""});
    std::string content = text, reasoning;
    if (head.chat) {
        ReasoningSplitter splitter(starts_in_reasoning);
        auto delta = splitter.push(text);
        auto rest = splitter.finish();
        content = delta.content + rest.content;
        reasoning = delta.reasoning + rest.reasoning;
    }
    res.set_content(full_response(head, content, reasoning, outcome.finish, usage_of(outcome)).dump(), "application/json");
}

void OpenAiServer::Impl::stream(httplib::Response& res, std::shared_ptr<Exchange> exchange, const ResponseHead& head, bool include_usage,
                                bool starts_in_reasoning) {
    struct StreamState {
        ReasoningSplitter splitter;
        bool first = true;
    };
    auto state = std::make_shared<StreamState>(StreamState{ReasoningSplitter(starts_in_reasoning), true});
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, exchange, head, include_usage, state](size_t, httplib::DataSink& sink) {
            std::unique_lock lock(exchange->mutex);
            exchange->changed.wait_for(lock, kKeepAliveInterval,
                                       [&] { return !exchange->text.empty() || exchange->finished || exchange->server_stopping; });
            if (exchange->server_stopping && !exchange->finished) return false;
            const std::string text = std::move(exchange->text);
            exchange->text.clear();
            const bool finished = exchange->finished;
            const RequestOutcome outcome = finished ? exchange->outcome : RequestOutcome{};
            const int64_t id = exchange->scheduler_id;
            lock.unlock();

            std::string out;
            auto add = [&](const ReasoningSplitter::Delta& delta) {
                if (!head.chat) {
                    if (!delta.content.empty() || state->first) out += sse(stream_chunk(head, delta.content, "", state->first));
                } else if (!delta.content.empty() || !delta.reasoning.empty() || state->first) {
                    out += sse(stream_chunk(head, delta.content, delta.reasoning, state->first));
                }
                state->first = false;
            };
            if (!text.empty() || state->first) add(head.chat ? state->splitter.push(text) : ReasoningSplitter::Delta{"", text});
            if (finished) {
                if (head.chat) add(state->splitter.finish());
                if (outcome.error) {
                    out += sse(json::parse(error_body({500, "the model failed: " + outcome.error->message, "server_error", "", ""})));
                } else {
                    const Usage usage = usage_of(outcome);
                    out += sse(stream_chunk(head, "", "", false, outcome.finish, &usage));
                    if (include_usage) out += sse(usage_chunk(head, usage));
                }
                out += "data: [DONE]\n\n";
            }
            if (out.empty()) out = ": keep-alive\n\n";
            if (!sink.write(out.data(), out.size())) {
                model.scheduler().cancel(id);  // the client has gone: free its slot now
                return false;
            }
            if (finished) sink.done();
            return true;
        },
        [this, exchange](bool success) {
            if (!success) model.scheduler().cancel(exchange->scheduler_id);
        });
}

void OpenAiServer::Impl::finish_record(Exchange& exchange) {
    RequestRecord record;
    {
        std::lock_guard lock(exchange.mutex);
        const RequestOutcome& o = exchange.outcome;
        RequestRecord& r = exchange.record;
        r.state = o.error ? "failed" : o.finish == FinishReason::Cancelled ? "cancelled" : "done";
        r.status = o.error ? 500 : 200;
        r.completion_tokens = o.timings.generated_tokens;
        r.time_to_first_token_s = o.timings.time_to_first_token_s;
        r.decode_tokens_per_s = o.timings.decode_tokens_per_s();
        r.finish_reason = o.error ? "error" : openai_finish_reason(o.finish);
        record = r;
    }
    report(record);
    char line[512];
    std::snprintf(line, sizeof line, "#%lld %s %s %s: %lld + %lld tokens, %s, first token %.3f s, %.1f tok/s", (long long)record.id,
                  record.endpoint.c_str(), record.model.c_str(), record.stream ? "stream" : "whole", (long long)record.prompt_tokens,
                  (long long)record.completion_tokens, record.finish_reason.c_str(), record.time_to_first_token_s, record.decode_tokens_per_s);
    log(line);
}

}  // namespace mwb::serve
