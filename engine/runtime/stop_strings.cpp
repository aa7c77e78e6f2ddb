#include "engine/runtime/stop_strings.h"

#include <algorithm>

namespace mwb {

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
    // Hold back the longest tail of the text that is the start of some stop string.
    size_t held = 0;
    for (const auto& stop : stops_)
        for (size_t length = std::min(stop.size() - 1, pending_.size()); length > held; --length)
            if (std::string_view(pending_).substr(pending_.size() - length) == std::string_view(stop).substr(0, length)) {
                held = length;
                break;
            }
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
