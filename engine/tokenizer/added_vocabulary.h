// tokenizer.json "added_tokens": tokens matched verbatim in the input before pre-tokenization.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mwb::tok {

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool special = false;
    bool normalized = false;  // matched against the normalized text instead of the raw input
    bool lstrip = false;      // also swallows the whitespace before it
    bool rstrip = false;      // also swallows the whitespace after it
    bool single_word = false; // only matches when not inside a word
};

// A piece of the input: either an added token (token_id >= 0) or text still to be tokenized.
struct AddedSplit {
    size_t start, end;
    int32_t token_id = -1;
};

// Finds added tokens in text the way Hugging Face tokenizers does: leftmost-longest non-overlapping
// matches, then the single_word / lstrip / rstrip rules.
class AddedTokenMatcher {
public:
    // `match_text` is what is searched for: the content, normalized for normalized tokens.
    void add(const AddedToken& token, std::string match_text);
    bool empty() const { return tokens_.empty(); }

    // Splits all of `text` into added tokens and the text between them (empty `text` gives no splits).
    std::vector<AddedSplit> split(std::string_view text) const;

private:
    struct Node {
        std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
        int32_t token = -1;                                         // index into tokens_ when a token ends here
    };
    int32_t child(int32_t node, unsigned char byte) const;

    std::vector<AddedToken> tokens_;
    std::vector<Node> nodes_{Node{}};
    bool first_bytes_[256] = {};
};

}  // namespace mwb::tok
