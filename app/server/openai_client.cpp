#include "app/server/openai_client.h"

#include <httplib.h>

#include "engine/observe/timings.h"

namespace mwb::serve {

namespace {

httplib::Headers headers_for(const std::string& api_key) {
    httplib::Headers headers;
    if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
    return headers;
}

ClientResponse from(const httplib::Result& result) {
    ClientResponse response;
    if (!result) {
        response.transport_error = httplib::to_string(result.error());
        return response;
    }
    response.status = result->status;
    response.body = result->body;
    return response;
}

}  // namespace

OpenAiClient::OpenAiClient(std::string base_url, std::string api_key) : base_url_(std::move(base_url)), api_key_(std::move(api_key)) {}

ClientResponse OpenAiClient::get(const std::string& path) const {
    httplib::Client client(base_url_);
    return from(client.Get(path, headers_for(api_key_)));
}

ClientResponse OpenAiClient::post(const std::string& path, const std::string& json_body) const {
    httplib::Client client(base_url_);
    client.set_read_timeout(600, 0);
    return from(client.Post(path, headers_for(api_key_), json_body, "application/json"));
}

ClientResponse OpenAiClient::post_stream(const std::string& path, const std::string& json_body,
                                         const std::function<bool(const std::string& data)>& on_event) const {
    httplib::Client client(base_url_);
    client.set_read_timeout(600, 0);
    ClientResponse response;
    std::string pending;
    Stopwatch clock;
    httplib::Request request;
    request.method = "POST";
    request.path = path;
    request.headers = headers_for(api_key_);
    request.headers.emplace("Accept", "text/event-stream");
    request.set_header("Content-Type", "application/json");
    request.body = json_body;
    // An event ends at a blank line; its `data:` lines carry the payload, lines starting with ':' are comments.
    request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
        response.body.append(data, length);
        pending.append(data, length);
        for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
            const std::string event = pending.substr(0, end);
            pending.erase(0, end + 2);
            std::string payload;
            size_t start = 0;
            while (start <= event.size()) {
                size_t stop = event.find('\n', start);
                if (stop == std::string::npos) stop = event.size();
                const std::string line = event.substr(start, stop - start);
                if (line.rfind("data:", 0) == 0) payload += line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
                start = stop + 1;
            }
            if (payload.empty()) continue;
            if (response.first_event_s < 0) response.first_event_s = clock.seconds();
            response.events.push_back(payload);
            if (on_event && !on_event(payload)) return false;
        }
        return true;
    };
    httplib::Response answer;
    httplib::Error error = httplib::Error::Success;
    const bool sent = client.send(request, answer, error);
    response.status = answer.status > 0 ? answer.status : 0;
    if (!sent) response.transport_error = httplib::to_string(error);
    // An error answer (no stream) arrives as a plain body, not through the receiver.
    if (response.body.empty()) response.body = answer.body;
    return response;
}

}  // namespace mwb::serve
