#include "engine/tokenizer/streaming_detokenizer.h"

#include <cstdint>
#include <span>

#include "engine/tokenizer/utf8.h"

namespace mwb::tok {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamingDetokenizer::decode_range(size_t begin, size_t end) const {
    return tokenizer_.decode(std::span<const int32_t>(ids_.data() + begin, end - begin), skip_special_tokens_);
}

std::string StreamingDetokenizer::push(int32_t id) {
    ids_.push_back(id);
    // Decoding from prefix_offset_ rather than read_offset_ gives decoders that treat the first token
    // specially (a stripped leading space) the same context as a full decode.
    std::string emitted = decode_range(prefix_offset_, read_offset_);
    std::string text = decode_range(prefix_offset_, ids_.size());
    bool incomplete = text.size() >= utf8::kReplacementCharacter.size() &&
                      text.compare(text.size() - utf8::kReplacementCharacter.size(), std::string::npos,
                                   utf8::kReplacementCharacter) == 0;
    if (text.size() <= emitted.size() || incomplete || text.compare(0, emitted.size(), emitted) != 0) return {};
    prefix_offset_ = read_offset_;
    read_offset_ = ids_.size();
    return text.substr(emitted.size());
}

std::string StreamingDetokenizer::finish() {
    if (read_offset_ == ids_.size()) return {};
    std::string emitted = decode_range(prefix_offset_, read_offset_);
    std::string text = decode_range(prefix_offset_, ids_.size());
    prefix_offset_ = read_offset_ = ids_.size();
    return text.size() > emitted.size() ? text.substr(emitted.size()) : std::string();
}

}  // namespace mwb::tok
