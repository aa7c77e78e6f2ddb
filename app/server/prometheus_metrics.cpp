#include "app/server/prometheus_metrics.h"

#include <charconv>

#include "engine/observe/routing_stats.h"

namespace mwb::serve {

namespace {

// Label values escape backslash, double quote and newline.
std::string label_value(const std::string& value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

// The shortest text that reads back as the same double.
std::string number(double value) {
    char text[64];
    const auto written = std::to_chars(text, text + sizeof text, value);
    return std::string(text, written.ptr);
}

class Writer {
public:
    void family(const std::string& name, const char* type, const char* help) {
        text_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void sample(const std::string& name, const std::string& labels, double value) {
        text_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(value) + "\n";
    }
    // A family of one unlabelled sample.
    void single(const std::string& name, const char* type, const char* help, double value) {
        family(name, type, help);
        sample(name, "", value);
    }
    void histogram(const std::string& name, const char* help, const LatencyHistogram& h) {
        family(name, "histogram", help);
        for (size_t i = 0; i < h.upper_bounds().size(); ++i)
            sample(name + "_bucket", "le=\"" + number(h.upper_bounds()[i]) + "\"", double(h.cumulative_counts()[i]));
        sample(name + "_bucket", "le=\"+Inf\"", double(h.count()));
        sample(name + "_sum", "", h.sum());
        sample(name + "_count", "", double(h.count()));
    }
    std::string take() { return std::move(text_); }

private:
    std::string text_;
};

}  // namespace

std::string prometheus_text(const MetricsSnapshot& snapshot) {
    const SchedulerStats& s = snapshot.scheduler;
    Writer w;
    w.family("mwb_model_info", "gauge", "The served model and the backend it runs on.");
    w.sample("mwb_model_info", "model=\"" + label_value(snapshot.model) + "\",backend=\"" + label_value(snapshot.backend) + "\"", 1);
    w.single("mwb_requests_running", "gauge", "Requests holding a KV-cache slot.", double(s.running));
    w.single("mwb_requests_waiting", "gauge", "Requests queued for a slot.", double(s.waiting));
    w.single("mwb_requests_finished_total", "counter", "Requests that ended (stop, length, cancelled).", double(s.finished));
    w.single("mwb_requests_failed_total", "counter", "Requests the backend failed.", double(s.failed));
    w.single("mwb_prompt_tokens_total", "counter", "Prompt tokens prefilled.", double(s.prompt_tokens));
    w.single("mwb_generation_tokens_total", "counter", "Tokens generated.", double(s.generated_tokens));
    w.single("mwb_scheduler_steps_total", "counter", "Batched forward passes.", double(s.steps));
    w.single("mwb_kv_cache_slots", "gauge", "KV-cache slots (requests that can run at once).", double(s.slot_count));
    w.single("mwb_kv_cache_tokens", "gauge", "KV-cache positions in use.", double(s.cached_tokens));
    w.single("mwb_kv_cache_usage_ratio", "gauge", "KV-cache positions in use over all positions (1 = full).", s.kv_cache_usage());
    w.histogram("mwb_time_to_first_token_seconds", "Submission to first generated token, the queue included.", s.time_to_first_token);
    w.histogram("mwb_inter_token_latency_seconds", "Time between consecutive tokens of a request.", s.inter_token);

    w.family("mwb_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
    for (const auto& [key, count] : snapshot.http.by_endpoint_and_status)
        w.sample("mwb_http_requests_total", "endpoint=\"" + label_value(key.first) + "\",code=\"" + std::to_string(key.second) + "\"",
                 double(count));

    if (!s.moe_layers.empty()) {
        w.family("mwb_expert_tokens_total", "counter", "Tokens the router sent to each routed expert, per MoE layer.");
        for (size_t row = 0; row < s.moe_layers.size(); ++row)
            for (size_t e = 0; e < s.expert_tokens[row].size(); ++e)
                w.sample("mwb_expert_tokens_total", "layer=\"" + std::to_string(s.moe_layers[row]) + "\",expert=\"" + std::to_string(e) + "\"",
                         double(s.expert_tokens[row][e]));
        // The Inspector's measures of balance, over everything served so far.
        LoadMatrix load;
        load.layers = s.moe_layers;
        load.experts = int64_t(s.expert_tokens.front().size());
        for (const auto& layer : s.expert_tokens) load.counts.insert(load.counts.end(), layer.begin(), layer.end());
        w.family("mwb_expert_load_max_over_mean", "gauge", "Per MoE layer: the busiest expert's tokens over the mean (1 = even).");
        for (size_t row = 0; row < s.moe_layers.size(); ++row)
            w.sample("mwb_expert_load_max_over_mean", "layer=\"" + std::to_string(s.moe_layers[row]) + "\"", imbalance(load, row).max_over_mean);
        w.family("mwb_expert_load_entropy", "gauge", "Per MoE layer: entropy of the expert load over its maximum (1 = even).");
        for (size_t row = 0; row < s.moe_layers.size(); ++row)
            w.sample("mwb_expert_load_entropy", "layer=\"" + std::to_string(s.moe_layers[row]) + "\"", imbalance(load, row).normalised_entropy);
    }
    return w.take();
}

}  // namespace mwb::serve
