// Turns generated token ids into text one id at a time, emitting only complete characters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace mwb::tok {

// Decodes a window of recent ids on every push and emits what it adds to the text before it, once
// that text no longer ends in an incomplete character (a U+FFFD at the end). The concatenation of
// all pushes and finish() equals decode() of all ids.
class StreamingDetokenizer {
public:
    StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);

    std::string push(int32_t id);
    // Whatever is still held back (an incomplete character at the very end becomes U+FFFD).
    std::string finish();

private:
    std::string decode_range(size_t begin, size_t end) const;

    Tokenizer tokenizer_;
    bool skip_special_tokens_;
    std::vector<int32_t> ids_;
    size_t prefix_offset_ = 0;  // start of the window that is decoded for context
    size_t read_offset_ = 0;    // ids up to here have been emitted
};

}  // namespace mwb::tok
