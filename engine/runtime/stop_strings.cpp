#include "engine/runtime/stop_strings.h"

#include <algorithm>

namespace mwb {

size_t partial_marker_length(std::string_view text, std::string_view marker) {
    if (marker.empty()) return 0;
    for (size_t length = std::min(marker.size() - 1, text.size()); length > 0; --length)
        if (text.substr(text.size() - length) == marker.substr(0, length)) return length;
    return 0;
}

StopStringFilter::StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
    stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

StopStringFilter::Piece StopStringFilter::push(std::string_view text) {
    Piece piece;
    if (stopped_) {
        piece.stopped = true;
        return piece;
    }
    pending_.append(text);
    size_t earliest = std::string::npos;
    for (const auto& stop : stops_) earliest = std::min(earliest, pending_.find(stop));
    if (earliest != std::string::npos) {
        piece.text = pending_.substr(0, earliest);
        piece.stopped = stopped_ = true;
        pending_.clear();
        return piece;
    }
    size_t held = 0;
    for (const auto& stop : stops_) held = std::max(held, partial_marker_length(pending_, stop));
    piece.text = pending_.substr(0, pending_.size() - held);
    pending_.erase(0, pending_.size() - held);
    return piece;
}

std::string StopStringFilter::finish() {
    std::string rest;
    rest.swap(pending_);
    return stopped_ ? std::string() : rest;
}

}  // namespace mwb
