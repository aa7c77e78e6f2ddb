// The OpenAI-compatible server over real HTTP on loopback: SSE framing, concurrent streams equal to their
// sequential outputs, every bad request with its status code (and the server still answering), a client
// that hangs up, Prometheus text whose counters add up, stop strings and R1 reasoning.
#include <QtTest>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <mutex>
#include <regex>
#include <thread>

#include "app/server/openai_api.h"
#include "app/server/openai_client.h"
#include "app/server/openai_server.h"
#include "tests/server/server_support.h"
#include "app/services/demo_model.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/runtime/generation.h"
#include "engine/runtime/stop_strings.h"

using namespace mwb;
using namespace mwb::serve;
using namespace mwb::serve::testing;
using nlohmann::json;

namespace {

const std::string kTokenizer = std::string(MWB_TEST_DATA) + "/tokenizer/deepseek-v3";

std::string demo_model() {
    static const std::string directory = [] {
        auto made = app::ensure_demo_model(QString(MWB_TEST_OUTPUT) + "/demo-model", app::standard_demo_recipe());
        if (!made) qFatal("%s", made.error().message.c_str());
        return made->toStdString();
    }();
    return directory;
}

json chat_body(const std::string& text, int64_t max_tokens, bool stream) {
    return {{"model", "test-model"},
            {"messages", json::array({{{"role", "user"}, {"content", text}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0},
            {"stream", stream}};
}

// The text of a stream: its content deltas joined.
std::string streamed_content(const ClientResponse& response, const char* field = "content") {
    std::string text;
    for (const auto& event : response.events) {
        if (event == "[DONE]") continue;
        const json chunk = json::parse(event);
        const json& choice = chunk["choices"][0];
        if (choice.contains("delta") && choice["delta"].contains(field)) text += choice["delta"][field].get<std::string>();
        if (choice.contains("text") && std::string(field) == "content") text += choice["text"].get<std::string>();
    }
    return text;
}

// Prometheus text exposition: every sample line is `name{labels} value`, every family announced by HELP and
// TYPE before its samples. Returns samples keyed by "name{labels}".
std::map<std::string, double> parse_prometheus(const std::string& text, QString& problem) {
    static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? (\S+)$)");
    static const std::regex comment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
    std::map<std::string, double> samples;
    std::set<std::string> typed;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_match(line, m, comment)) {
            if (m[1] == "TYPE") {
                static const std::set<std::string> types = {"counter", "gauge", "histogram", "summary", "untyped"};
                if (!types.count(m[3])) problem = "unknown type in: " + QString::fromStdString(line);
                typed.insert(m[2]);
            }
            continue;
        }
        if (!std::regex_match(line, m, sample)) {
            problem = "not a sample line: " + QString::fromStdString(line);
            return samples;
        }
        std::string family = m[1];
        for (const char* suffix : {"_bucket", "_sum", "_count"})
            if (!typed.count(family) && family.size() > strlen(suffix) && family.compare(family.size() - strlen(suffix), strlen(suffix), suffix) == 0)
                family = family.substr(0, family.size() - strlen(suffix));
        if (!typed.count(family)) problem = "sample before its TYPE: " + QString::fromStdString(line);
        samples[std::string(m[1]) + std::string(m[2])] = std::stod(m[3]);
    }
    return samples;
}

}  // namespace

class ServerTest : public QObject {
    Q_OBJECT

private slots:
    // A streamed chat completion on the demo model: framing, role first, [DONE] last, usage, and the same
    // text as the engine's own greedy generation on the same prompt.
    void streamed_chat_is_framed_and_equals_greedy_generation() {
        auto running = start_server(demo_model(), "", scheduler_with(2, 4));
        const auto client = running->client();
        const ClientResponse stream = client.post_stream("/v1/chat/completions", chat_body("Hello, who are you?", 12, true).dump());
        QCOMPARE(stream.status, 200);
        QVERIFY(stream.body.rfind("data: ", 0) == 0);
        QVERIFY(stream.body.size() > 14 && stream.body.compare(stream.body.size() - 14, 14, "data: [DONE]\n\n") == 0);
        QVERIFY(stream.events.size() >= 3);
        QCOMPARE(stream.events.back(), std::string("[DONE]"));
        const json first = json::parse(stream.events.front());
        QCOMPARE(first["object"].get<std::string>(), std::string("chat.completion.chunk"));
        QCOMPARE(first["choices"][0]["delta"]["role"].get<std::string>(), std::string("assistant"));
        const json last = json::parse(stream.events[stream.events.size() - 2]);
        QCOMPARE(last["choices"][0]["finish_reason"].get<std::string>(), std::string("length"));
        QCOMPARE(last["usage"]["completion_tokens"].get<int64_t>(), int64_t(12));

        // The engine alone, the same prompt, greedy.
        auto tokenizer = tok::Tokenizer::load(demo_model());
        QVERIFY(tokenizer);
        auto prompt = chat_prompt_ids(*tokenizer, {{"user", "Hello, who are you?", {}, {}, tok::TemplateJson::object()}});
        QVERIFY(prompt);
        QCOMPARE(last["usage"]["prompt_tokens"].get<int64_t>(), int64_t(prompt->size()));
        auto graph = load_model_graph(demo_model());
        QVERIFY(graph);
        auto backend = make_cpu_backend(std::make_shared<const ModelGraph>(std::move(graph.value())), 2);
        QVERIFY(backend->reserve_cache(1, 64));
        GenerationRequest request;
        request.prompt = *prompt;
        request.sampling.temperature = 0;
        request.max_new_tokens = 12;
        auto generated = generate(*backend, request);
        QVERIFY(generated);
        QCOMPARE(streamed_content(stream), tokenizer->decode(generated->tokens, true));

        // Not streamed: one chat.completion with the same text.
        const ClientResponse whole = client.post("/v1/chat/completions", chat_body("Hello, who are you?", 12, false).dump());
        QCOMPARE(whole.status, 200);
        const json body = json::parse(whole.body);
        QCOMPARE(body["object"].get<std::string>(), std::string("chat.completion"));
        QCOMPARE(body["choices"][0]["message"]["content"].get<std::string>(), streamed_content(stream));
        QCOMPARE(body["usage"]["total_tokens"].get<int64_t>(), int64_t(prompt->size()) + 12);

        const json models = json::parse(client.get("/v1/models").body);
        QCOMPARE(models["data"][0]["id"].get<std::string>(), std::string("test-model"));
    }

    // 64 clients at once on dsv3-tiny: every stream completes and equals what the same request gives alone.
    void sixty_four_concurrent_streams_equal_their_sequential_outputs() {
        auto running = start_server(std::string(MWB_TEST_DATA) + "/models/dsv3-tiny", kTokenizer, scheduler_with(8, 64));
        const auto client = running->client();
        auto body = [](int i) {
            json ids = json::array();
            for (int t = 0; t <= i % 13; ++t) ids.push_back((i * 37 + t * 11) % 500 + 5);
            return json{{"prompt", ids}, {"max_tokens", 8 + i % 9}, {"temperature", i % 2 ? 0.8 : 0.0}, {"seed", i},
                        {"stream", true}, {"ignore_eos", true}};
        };
        std::vector<ClientResponse> together(64);
        std::vector<std::thread> clients;
        for (int i = 0; i < 64; ++i)
            clients.emplace_back([&, i] { together[size_t(i)] = client.post_stream("/v1/completions", body(i).dump()); });
        for (auto& t : clients) t.join();
        for (int i = 0; i < 64; ++i) {
            const ClientResponse alone = client.post_stream("/v1/completions", body(i).dump());
            QVERIFY2(together[size_t(i)].status == 200, qPrintable(QString("%1: %2 after %3 events: %4").arg(i).arg(QString::fromStdString(together[size_t(i)].transport_error)).arg(together[size_t(i)].events.size()).arg(QString::fromStdString(together[size_t(i)].body.substr(0, 300)))));
            QCOMPARE(together[size_t(i)].events.back(), std::string("[DONE]"));
            QCOMPARE(streamed_content(together[size_t(i)]), streamed_content(alone));
            const json last = json::parse(together[size_t(i)].events[together[size_t(i)].events.size() - 2]);
            QCOMPARE(last["usage"]["completion_tokens"].get<int64_t>(), int64_t(8 + i % 9));
        }
    }

    void bad_requests_get_their_status_and_the_server_stays_up() {
        ServerOptions options;
        options.api_key = "sesame";
        options.max_body_bytes = 64 << 10;
        // The demo model is slow enough at a 129k vocabulary that a long reply holds its one slot for seconds.
        auto running = start_server(demo_model(), "", scheduler_with(1, 0, 4096), options);
        const auto client = running->client("sesame");
        auto status_of = [&](const std::string& body) { return client.post("/v1/chat/completions", body); };
        auto check = [&](const ClientResponse& response, int status, const char* type) {
            QCOMPARE(response.status, status);
            const json error = json::parse(response.body);
            QCOMPARE(error["error"]["type"].get<std::string>(), std::string(type));
            QVERIFY(!error["error"]["message"].get<std::string>().empty());
        };
        check(status_of("{\"messages\": [ {\"role\": "), 400, "invalid_request_error");
        check(status_of("[1, 2]"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": "hi"})"), 400, "invalid_request_error");
        check(status_of(R"({"model": "test-model"})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "wizard", "content": "hi"}]})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000000000})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2.5})"), 400, "invalid_request_error");
        check(status_of(R"({"messages": [{"role": "user", "content": "hi"}], "n": 3})"), 400, "invalid_request_error");
        check(status_of(R"({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})"), 404, "invalid_request_error");
        check(client.post("/v1/completions", R"({"prompt": [1, 2, 999999]})"), 400, "invalid_request_error");
        check(client.post("/v1/completions", std::string(70 << 10, ' ')), 413, "invalid_request_error");
        check(client.get("/v1/engines"), 404, "invalid_request_error");
        check(running->client().post("/v1/chat/completions", chat_body("hi", 2, false).dump()), 401, "authentication_error");
        check(running->client("open-sesame").get("/v1/models"), 401, "authentication_error");
        QCOMPARE(running->client().get("/health").status, 200);  // health and metrics need no key
        // A browser's preflight needs no key and learns that other origins may call.
        {
            httplib::Client browser(running->server->base_url());
            auto preflight = browser.Options("/v1/chat/completions", {{"Origin", "http://localhost:3000"},
                                                                      {"Access-Control-Request-Method", "POST"}});
            QVERIFY(preflight);
            QCOMPARE(preflight->status, 204);
            QCOMPARE(preflight->get_header_value("Access-Control-Allow-Origin"), std::string("*"));
            QVERIFY(preflight->get_header_value("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
        }

        // One slot, no queue: a second request while the first streams is refused with 429.
        std::atomic<bool> first_event{false}, hang_up{false};
        std::mutex mutex;
        std::condition_variable changed;
        std::thread holder([&] {
            const json body = {{"prompt", json::array({5, 6, 7})}, {"max_tokens", 4000}, {"stream", true}, {"ignore_eos", true}};
            client.post_stream("/v1/completions", body.dump(), [&](const std::string&) {
                std::unique_lock lock(mutex);
                first_event = true;
                changed.notify_all();
                changed.wait(lock, [&] { return hang_up.load(); });
                return false;  // hang up mid-stream
            });
        });
        {
            std::unique_lock lock(mutex);
            changed.wait(lock, [&] { return first_event.load(); });
        }
        check(status_of(chat_body("hi", 2, false).dump()), 429, "rate_limit_error");
        {
            std::lock_guard lock(mutex);
            hang_up = true;
            changed.notify_all();
        }
        holder.join();
        // The slot is freed as soon as the server finds the client gone, long before 4,000 tokens.
        QTRY_COMPARE_WITH_TIMEOUT(json::parse(client.get("/health").body)["running"].get<int64_t>(), int64_t(0), 20000);
        const auto records = running->recorder.records();
        const auto cancelled = std::find_if(records.begin(), records.end(), [](const auto& r) { return r.second.state == "cancelled"; });
        QVERIFY(cancelled != records.end());
        QVERIFY(cancelled->second.completion_tokens < 4000);

        const ClientResponse good = status_of(chat_body("hi", 3, false).dump());
        QCOMPARE(good.status, 200);
        QCOMPARE(json::parse(good.body)["usage"]["completion_tokens"].get<int64_t>(), int64_t(3));
    }

    void metrics_parse_as_prometheus_text_and_add_up() {
        auto running = start_server(std::string(MWB_TEST_DATA) + "/models/dsv3-tiny", kTokenizer, scheduler_with(4, 8));
        const auto client = running->client();
        int64_t prompt_tokens = 0, completion_tokens = 0, forwarded = 0;
        for (int i = 0; i < 6; ++i) {
            const json body = {{"prompt", json::array({i + 5, i + 6, i + 7, 9})}, {"max_tokens", 5 + i}, {"stream", i % 2 == 1},
                               {"ignore_eos", true}, {"temperature", 0}};
            const ClientResponse response = i % 2 ? client.post_stream("/v1/completions", body.dump()) : client.post("/v1/completions", body.dump());
            QCOMPARE(response.status, 200);
            const json usage = i % 2 ? json::parse(response.events[response.events.size() - 2])["usage"] : json::parse(response.body)["usage"];
            prompt_tokens += usage["prompt_tokens"].get<int64_t>();
            completion_tokens += usage["completion_tokens"].get<int64_t>();
            forwarded += usage["prompt_tokens"].get<int64_t>() + usage["completion_tokens"].get<int64_t>() - 1;
        }
        QCOMPARE(client.post("/v1/completions", "{").status, 400);

        const ClientResponse metrics = client.get("/metrics");
        QCOMPARE(metrics.status, 200);
        QString problem;
        const auto samples = parse_prometheus(metrics.body, problem);
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
        QCOMPARE(samples.at("mwb_prompt_tokens_total"), double(prompt_tokens));
        QCOMPARE(prompt_tokens, int64_t(24));
        QCOMPARE(samples.at("mwb_generation_tokens_total"), double(completion_tokens));
        QCOMPARE(samples.at("mwb_requests_finished_total"), 6.0);
        QCOMPARE(samples.at("mwb_requests_running"), 0.0);
        QCOMPARE(samples.at("mwb_time_to_first_token_seconds_count"), 6.0);
        QCOMPARE(samples.at("mwb_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 6.0);
        QCOMPARE(samples.at("mwb_inter_token_latency_seconds_count"), double(completion_tokens - 6));
        QCOMPARE(samples.at("mwb_http_requests_total{endpoint=\"/v1/completions\",code=\"200\"}"), 6.0);
        QCOMPARE(samples.at("mwb_http_requests_total{endpoint=\"/v1/completions\",code=\"400\"}"), 1.0);
        // Every forwarded token went to k = 4 of the 16 experts in each MoE layer.
        const auto& config = running->model->config();
        for (int64_t layer = 0; layer < config.num_layers; ++layer) {
            if (!config.is_moe_layer(layer)) continue;
            double sum = 0;
            for (int64_t e = 0; e < config.moe->n_routed_experts; ++e)
                sum += samples.at("mwb_expert_tokens_total{layer=\"" + std::to_string(layer) + "\",expert=\"" + std::to_string(e) + "\"}");
            QCOMPARE(sum, double(forwarded * config.moe->experts_per_token));
        }
    }

    // A stop string ends the reply before it: the text is the greedy text up to the stop string.
    void stop_strings_end_the_reply_before_them() {
        auto running = start_server(demo_model(), "", scheduler_with(2, 2));
        const auto client = running->client();
        const std::string full = json::parse(client.post("/v1/chat/completions", chat_body("Tell me a story.", 16, false).dump()).body)
                                     ["choices"][0]["message"]["content"].get<std::string>();
        QVERIFY(full.size() > 12);
        const std::string stop = full.substr(full.size() / 2, 3);
        json body = chat_body("Tell me a story.", 16, true);
        body["stop"] = json::array({stop, "never-seen-stop"});
        const ClientResponse stopped = client.post_stream("/v1/chat/completions", body.dump());
        QCOMPARE(streamed_content(stopped), full.substr(0, full.find(stop)));
        QCOMPARE(json::parse(stopped.events[stopped.events.size() - 2])["choices"][0]["finish_reason"].get<std::string>(), std::string("stop"));
    }

    void a_bind_beyond_loopback_needs_a_key() {
        auto running = start_server(std::string(MWB_TEST_DATA) + "/models/dsv3-tiny", kTokenizer, scheduler_with(1, 1));
        ServerOptions open;
        open.host = "0.0.0.0";
        open.port = 0;
        auto refused = OpenAiServer::start(*running->model, open);
        QVERIFY(!refused);
        QVERIFY(QString::fromStdString(refused.error().message).contains("API key"));
    }

    // The pieces of text handling, against hand-written streams.
    void stop_string_filter_holds_back_only_what_may_be_a_stop() {
        StopStringFilter filter({"STOP", "\n\n"});
        QCOMPARE(filter.push("Hello ST").text, std::string("Hello "));
        QCOMPARE(filter.push("ORY S").text, std::string("STORY "));
        const auto last = filter.push("TOP and more");
        QCOMPARE(last.text, std::string(""));
        QVERIFY(last.stopped);
        StopStringFilter other({"\n\n"});
        QCOMPARE(other.push("line\n").text, std::string("line"));
        QCOMPARE(other.push("x").text, std::string("\nx"));
        QCOMPARE(other.finish(), std::string(""));
    }

    void reasoning_splitter_separates_think_blocks() {
        ReasoningSplitter r1(true);  // the prompt ended with <think>
        auto a = r1.push("Let me th");
        auto b = r1.push("ink.</th");
        auto c = r1.push("ink>The answer is 4.");
        QCOMPARE(a.reasoning + b.reasoning + c.reasoning, std::string("Let me think."));
        QCOMPARE(a.content + b.content + c.content, std::string("The answer is 4."));
        ReasoningSplitter opens(false);
        auto d = opens.push("\n<thi");
        auto e = opens.push("nk>why</think>so");
        QCOMPARE(d.reasoning + e.reasoning, std::string("why"));
        QCOMPARE(d.content + e.content, std::string("so"));
        ReasoningSplitter plain(false);
        QCOMPARE(plain.push("no tags here").content, std::string("no tags here"));
    }
};

QTEST_GUILESS_MAIN(ServerTest)
#include "test_server.moc"
