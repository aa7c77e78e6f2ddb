// Stop strings over streamed text: text is let through as it arrives, except a tail that could still grow
// into a stop string, which waits until it either completes one (the text ends before it) or cannot.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mwb {

// The length of the longest end of `text` that is a start of `marker` but not all of it: text that must wait for
// the next piece to show whether the marker follows.
size_t partial_marker_length(std::string_view text, std::string_view marker);

class StopStringFilter {
public:
    explicit StopStringFilter(std::vector<std::string> stops);

    struct Piece {
        std::string text;      // safe to show now
        bool stopped = false;  // a stop string was reached; nothing more comes
    };
    Piece push(std::string_view text);
    std::string finish();  // the held-back tail, when the stream ends without a stop

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
};

}  // namespace mwb
