// mwb serve / bench-serve.
#include <QCoreApplication>
#include <QStandardPaths>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <pthread.h>
#include <random>
#include <thread>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "app/server/openai_client.h"
#include "app/server/openai_server.h"
#include "app/services/demo_model.h"
#ifdef MWB_HAVE_IMAGE_FILES
#include "app/vision/image_file.h"
#endif
#include "engine/observe/timings.h"

namespace mwb::cli {

namespace {

// The model folder named on the command line, or the built-in demo model where the app keeps it (written
// there first when the app has not run yet).
Result<std::string> model_directory(const CliArgs& args) {
    if (!args.positionals().empty()) return args.positionals()[0];
    QCoreApplication::setOrganizationName("MoE Workbench");
    QCoreApplication::setApplicationName("moe-workbench");
    const QString directory = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/demo-model";
    std::fprintf(stderr, "mwb: no model folder given: serving the built-in demo model (%s)\n", directory.toLocal8Bit().constData());
    auto ready = app::ensure_demo_model(directory, app::standard_demo_recipe());
    if (!ready) return ready.error();
    return ready->toStdString();
}

// --lora name=DIR,name2=DIR2
Result<std::map<std::string, std::string>> adapter_list(const CliArgs& args) {
    std::map<std::string, std::string> adapters;
    const std::string list = args.get_or("lora", "");
    size_t start = 0;
    while (start < list.size()) {
        size_t end = list.find(',', start);
        if (end == std::string::npos) end = list.size();
        const std::string item = list.substr(start, end - start);
        const size_t equals = item.find('=');
        if (equals == std::string::npos || equals == 0 || equals + 1 == item.size())
            return make_error("--lora takes NAME=ADAPTER_DIR[,NAME=ADAPTER_DIR...], got '" + item + "'");
        adapters[item.substr(0, equals)] = item.substr(equals + 1);
        start = end + 1;
    }
    return adapters;
}

Result<serve::ServedModelOptions> served_model_options(const CliArgs& args) {
    serve::ServedModelOptions options;
    auto directory = model_directory(args);
    if (!directory) return directory.error();
    options.model_dir = *directory;
    options.name = args.get_or("name", args.positionals().empty() ? "demo" : "");
    options.tokenizer_dir = args.get_or("tokenizer", "");
    options.device = args.get_or("device", "cpu");
    auto threads = args.integer_or("threads", 0);
    auto max_batch = args.integer_or("max-batch", 8);
    auto max_queue = args.integer_or("max-queue", 64);
    auto context = args.integer_or("context", 4096);
    auto chunk = args.integer_or("prefill-chunk", 256);
    for (const Error* e : {threads ? nullptr : &threads.error(), max_batch ? nullptr : &max_batch.error(),
                           max_queue ? nullptr : &max_queue.error(), context ? nullptr : &context.error(), chunk ? nullptr : &chunk.error()})
        if (e) return *e;
    options.threads = int(*threads);
    options.scheduler.max_running = *max_batch;
    options.scheduler.max_queue = *max_queue;
    options.scheduler.context = *context;
    options.scheduler.prefill_chunk = std::min<int64_t>(*chunk, *context);
    auto step = args.integer_or("step-tokens", *max_batch + options.scheduler.prefill_chunk);
    if (!step) return step.error();
    options.scheduler.step_tokens = *step;
    auto adapters = adapter_list(args);
    if (!adapters) return adapters.error();
    options.adapters = *adapters;
#ifdef MWB_HAVE_IMAGE_FILES
    options.decode_image = app::read_base64_image;
#endif
    return options;
}

// Prints the server's log lines on stderr.
class StderrLog final : public serve::ServerListener {
public:
    void on_log(const std::string& line) override {
        std::lock_guard lock(mutex_);
        std::fprintf(stderr, "mwb serve: %s\n", line.c_str());
    }

private:
    std::mutex mutex_;
};

double percentile(std::vector<double> values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const size_t index = std::min(values.size() - 1, size_t(p / 100.0 * double(values.size() - 1) + 0.5));
    return values[index];
}

}  // namespace

int run_serve(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {},
                               {"host", "port", "api-key", "max-batch", "max-queue", "context", "device", "threads", "name", "tokenizer",
                                "lora", "prefill-chunk", "step-tokens", "max-body-mb"});
    if (!args) return fail(args.error().message);
    if (args->positionals().size() > 1) return fail("give at most one model folder");
    // Refused before minutes of model loading: an open address without a key.
    const std::string host = args->get_or("host", "127.0.0.1");
    if (auto open = serve::check_bind_address(host, args->get_or("api-key", "")); !open) return fail(open.error().message);
    auto options = served_model_options(*args);
    if (!options) return fail(options.error().message);
    auto port = args->integer_or("port", 8080);
    auto body_mb = args->integer_or("max-body-mb", 8);
    if (!port || !body_mb || *body_mb < 1) return fail("--port and --max-body-mb expect integers (--max-body-mb at least 1)");

    // SIGINT and SIGTERM are taken by sigwait below, so every thread started from here on leaves them alone.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto model = serve::ServedModel::open(*options);
    if (!model) return fail(model.error().message);
    serve::ServerOptions server_options;
    server_options.host = host;
    server_options.port = int(*port);
    server_options.api_key = args->get_or("api-key", "");
    server_options.max_body_bytes = size_t(*body_mb) << 20;
    StderrLog log;
    auto server = serve::OpenAiServer::start(**model, server_options, &log);
    if (!server) return fail(server.error().message);
    const auto& s = options->scheduler;
    std::fprintf(stderr, "mwb serve: %lld slots × %lld tokens, queue %lld, step budget %lld tokens; Ctrl+C stops\n", (long long)s.max_running,
                 (long long)s.context, (long long)s.max_queue, (long long)s.step_tokens);
    std::printf("%s\n", (*server)->base_url().c_str());
    std::fflush(stdout);
    int signal = 0;
    sigwait(&stop_signals, &signal);
    std::fprintf(stderr, "mwb serve: %s: stopping\n", signal == SIGINT ? "interrupted" : "terminated");
    (*server)->stop();
    return 0;
}

int run_bench_serve(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {},
                               {"url", "api-key", "model", "clients", "requests", "prompt", "gen", "seed", "device", "max-batch", "context",
                                "threads", "tokenizer"});
    if (!args) return fail(args.error().message);
    auto clients = args->integer_or("clients", 8);
    auto prompt = args->integer_or("prompt", 128);
    auto gen = args->integer_or("gen", 64);
    auto seed = args->integer_or("seed", 1);
    if (!clients || !prompt || !gen || !seed || *clients < 1 || *prompt < 1 || *gen < 1)
        return fail("--clients, --prompt and --gen expect positive integers");
    auto requests = args->integer_or("requests", *clients * 2);
    if (!requests || *requests < 1) return fail("--requests expects a positive integer");

    // Without --url, a server of our own on a free port: the model folder given, else the demo model.
    std::unique_ptr<serve::ServedModel> own_model;
    std::unique_ptr<serve::OpenAiServer> own_server;
    std::string url = args->get_or("url", "");
    if (url.empty()) {
        auto options = served_model_options(*args);
        if (!options) return fail(options.error().message);
        options->scheduler.max_queue = std::max<int64_t>(options->scheduler.max_queue, *clients);
        options->scheduler.context = std::max<int64_t>(options->scheduler.context, *prompt + *gen + 1);
        options->scheduler.prefill_chunk = std::min<int64_t>(options->scheduler.prefill_chunk, options->scheduler.context);
        options->scheduler.step_tokens = options->scheduler.max_running + options->scheduler.prefill_chunk;
        auto model = serve::ServedModel::open(*options);
        if (!model) return fail(model.error().message);
        own_model = std::move(model.value());
        serve::ServerOptions server_options;
        server_options.port = 0;
        auto server = serve::OpenAiServer::start(*own_model, server_options);
        if (!server) return fail(server.error().message);
        own_server = std::move(server.value());
        url = own_server->base_url();
    }
    const serve::OpenAiClient client(url, args->get_or("api-key", ""));

    auto models = client.get("/v1/models");
    if (models.status != 200) return fail("cannot reach " + url + "/v1/models: " + (models.status ? "HTTP " + std::to_string(models.status) : models.transport_error));
    const auto listed = nlohmann::json::parse(models.body, nullptr, false);
    std::string model_name = args->get_or("model", "");
    if (model_name.empty() && listed.is_object() && listed.contains("data") && !listed["data"].empty()) model_name = listed["data"][0].value("id", "");
    // Prompts of ordinary token ids: below the vocabulary of our own model, below 1,010 for another server.
    const int64_t id_range = std::min<int64_t>(1000, own_model ? own_model->config().vocab_size - 10 : 1000);

    struct Sample {
        double ttft_s = 0, total_s = 0;
        int64_t tokens = 0;
        bool ok = false;
        std::string problem;
    };
    std::vector<Sample> samples(static_cast<size_t>(*requests));
    std::atomic<int64_t> next{0};
    Stopwatch wall;
    std::vector<std::thread> threads;
    for (int64_t c = 0; c < *clients; ++c)
        threads.emplace_back([&] {
            for (int64_t i; (i = next++) < *requests;) {
                std::mt19937_64 random(uint64_t(*seed) * 7919 + uint64_t(i));
                std::vector<int64_t> ids;
                for (int64_t t = 0; t < *prompt; ++t) ids.push_back(int64_t(random() % uint64_t(id_range)) + 10);
                const nlohmann::json body = {{"model", model_name}, {"prompt", ids}, {"max_tokens", *gen}, {"temperature", 0},
                                             {"stream", true}, {"ignore_eos", true}, {"stream_options", {{"include_usage", true}}}};
                Sample& sample = samples[size_t(i)];
                Stopwatch clock;
                double first_text = -1;
                auto response = client.post_stream("/v1/completions", body.dump(), [&](const std::string& data) {
                    if (data == "[DONE]") return true;
                    const auto event = nlohmann::json::parse(data, nullptr, false);
                    if (first_text < 0 && event.is_object() && event.contains("choices") && !event["choices"].empty() &&
                        !event["choices"][0].value("text", "").empty())
                        first_text = clock.seconds();
                    if (event.is_object() && event.contains("usage") && event["usage"].is_object())
                        sample.tokens = event["usage"].value("completion_tokens", int64_t(0));
                    return true;
                });
                sample.total_s = clock.seconds();
                sample.ttft_s = first_text >= 0 ? first_text : response.first_event_s;
                sample.ok = response.status == 200 && !response.events.empty() && response.events.back() == "[DONE]";
                if (!sample.ok) sample.problem = response.status ? "HTTP " + std::to_string(response.status) + ": " + response.body : response.transport_error;
            }
        });
    for (auto& t : threads) t.join();
    const double wall_s = wall.seconds();

    std::vector<double> ttft, per_token;
    int64_t tokens = 0, failed = 0;
    std::string first_problem;
    for (const auto& s : samples) {
        if (!s.ok) {
            ++failed;
            if (first_problem.empty()) first_problem = s.problem;
            continue;
        }
        ttft.push_back(s.ttft_s);
        tokens += s.tokens;
        if (s.tokens > 1) per_token.push_back((s.total_s - s.ttft_s) / double(s.tokens - 1));
    }
    nlohmann::json report = {{"url", url}, {"model", model_name}, {"clients", *clients}, {"requests", *requests},
                             {"prompt_tokens", *prompt}, {"max_tokens", *gen}, {"failed", failed},
                             {"wall_s", wall_s}, {"generated_tokens", tokens},
                             {"aggregate_tokens_per_s", wall_s > 0 ? double(tokens) / wall_s : 0},
                             {"requests_per_s", wall_s > 0 ? double(*requests - failed) / wall_s : 0},
                             {"ttft_p50_s", percentile(ttft, 50)}, {"ttft_p99_s", percentile(ttft, 99)},
                             {"time_per_output_token_p50_s", percentile(per_token, 50)},
                             {"time_per_output_token_p99_s", percentile(per_token, 99)}};
    if (own_model) report["backend"] = own_model->backend_name();
    if (!first_problem.empty()) report["first_failure"] = first_problem;
    std::printf("%s\n", report.dump(2).c_str());
    return failed ? 1 : 0;
}

}  // namespace mwb::cli
