#include "engine/tokenizer/added_vocabulary.h"

#include <algorithm>
#include <cstdint>

#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok {
namespace {

bool is_word_character(char32_t c) { return c == '_' || unicode::is_alphanumeric(c); }

char32_t last_char(std::string_view text) {
    size_t pos = text.size() - 1;
    while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
    size_t length = 0;
    return utf8::decode(text, pos, &length);
}

// Byte offset just after the last non-whitespace character of `text`, 0 if there is none.
size_t end_of_last_non_space(std::string_view text) {
    size_t end = text.size();
    while (end > 0) {
        size_t pos = end - 1;
        while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
        size_t length = 0;
        if (!unicode::is_whitespace(utf8::decode(text, pos, &length))) return end;
        end = pos;
    }
    return 0;
}

// Byte length of the whitespace at the start of `text`.
size_t leading_space_length(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t length = 0;
        if (!unicode::is_whitespace(utf8::decode(text, pos, &length))) break;
        pos += length;
    }
    return pos;
}

}  // namespace

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
    const auto& children = nodes_[static_cast<size_t>(node)].children;
    auto it = std::lower_bound(children.begin(), children.end(), byte,
                               [](const auto& entry, unsigned char b) { return entry.first < b; });
    return it != children.end() && it->first == byte ? it->second : -1;
}

void AddedTokenMatcher::add(const AddedToken& token, std::string match_text) {
    if (match_text.empty()) return;
    int32_t node = 0;
    for (char c : match_text) {
        auto byte = static_cast<unsigned char>(c);
        int32_t next = child(node, byte);
        if (next < 0) {
            next = static_cast<int32_t>(nodes_.size());
            nodes_.push_back(Node{});
            auto& children = nodes_[static_cast<size_t>(node)].children;
            auto it = std::lower_bound(children.begin(), children.end(), byte,
                                       [](const auto& entry, unsigned char b) { return entry.first < b; });
            children.insert(it, {byte, next});
        }
        node = next;
    }
    first_bytes_[static_cast<unsigned char>(match_text[0])] = true;
    nodes_[static_cast<size_t>(node)].token = static_cast<int32_t>(tokens_.size());
    tokens_.push_back(token);
}

std::vector<AddedSplit> AddedTokenMatcher::split(std::string_view text) const {
    std::vector<AddedSplit> splits;
    if (text.empty()) return splits;
    size_t split_start = 0;  // end of the previous added token
    size_t search = 0;
    while (search < text.size()) {
        // Leftmost position where some token matches, and the longest token there.
        size_t match_start = text.size(), match_end = 0;
        int32_t match_token = -1;
        for (size_t pos = search; pos < text.size() && match_token < 0; ++pos) {
            if (!first_bytes_[static_cast<unsigned char>(text[pos])]) continue;
            int32_t node = 0;
            for (size_t i = pos; i < text.size(); ++i) {
                node = child(node, static_cast<unsigned char>(text[i]));
                if (node < 0) break;
                if (int32_t token = nodes_[static_cast<size_t>(node)].token; token >= 0) {
                    match_start = pos;
                    match_end = i + 1;
                    match_token = token;
                }
            }
        }
        if (match_token < 0) break;
        search = match_end;
        const AddedToken& token = tokens_[static_cast<size_t>(match_token)];
        size_t start = match_start, end = match_end;
        if (token.single_word) {
            bool word_before = start > 0 && is_word_character(last_char(text.substr(0, start)));
            size_t length = 0;
            bool word_after = end < text.size() && is_word_character(utf8::decode(text, end, &length));
            if (word_before || word_after) continue;
        }
        if (token.lstrip) start = std::max(end_of_last_non_space(text.substr(0, start)), split_start);
        if (token.rstrip) end += leading_space_length(text.substr(end));
        if (split_start < start) splits.push_back({split_start, start, -1});
        splits.push_back({start, end, token.id});
        split_start = end;
        search = end;
    }
    if (split_start < text.size()) splits.push_back({split_start, text.size(), -1});
    return splits;
}

}  // namespace mwb::tok
