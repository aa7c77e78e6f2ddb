// /metrics in the Prometheus text exposition format (version 0.0.4): the scheduler's gauges, counters and
// latency histograms, the HTTP status counts, and the routed-expert load of every MoE layer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "engine/runtime/scheduler.h"

namespace mwb::serve {

struct HttpCounts {
    std::map<std::pair<std::string, int>, int64_t> by_endpoint_and_status;  // (endpoint, HTTP status) → requests
};

struct MetricsSnapshot {
    std::string model, backend;
    SchedulerStats scheduler;
    HttpCounts http;
};

std::string prometheus_text(const MetricsSnapshot& snapshot);

}  // namespace mwb::serve
