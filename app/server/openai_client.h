// A small client of OpenAI-compatible servers over cpp-httplib, for `mwb bench-serve` and the server tests:
// plain requests, and streamed ones read event by event as Server-Sent Events.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace mwb::serve {

struct ClientResponse {
    int status = 0;          // 0 when no HTTP answer came
    std::string transport_error;
    std::string body;        // the raw body (for a stream: every byte received)
    std::vector<std::string> events;  // a stream's `data:` payloads, in order, [DONE] included
    double first_event_s = -1;        // request sent → first `data:` event
};

class OpenAiClient {
public:
    OpenAiClient(std::string base_url, std::string api_key = {});

    ClientResponse get(const std::string& path) const;
    ClientResponse post(const std::string& path, const std::string& json_body) const;
    // `on_event` sees each `data:` payload as it arrives; returning false hangs up.
    ClientResponse post_stream(const std::string& path, const std::string& json_body,
                               const std::function<bool(const std::string& data)>& on_event = {}) const;

private:
    std::string base_url_, api_key_;
};

}  // namespace mwb::serve
