// A tokenizer.json for the tiny fixture models, which ship none: byte-level BPE without merges, so that byte b
// of the UTF-8 text is token b (ids stay inside a small vocabulary), plus added special tokens whose ids take
// the place of those bytes.
#pragma once

#include <QChar>
#include <QString>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mwb::testing {

// GPT-2's byte-to-character table: the byte-level alphabet of tokenizer.json files.
inline QString byte_character(int byte) {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (b == byte) return QString(QChar(printable ? b : 256 + extra));
        extra += !printable;
    }
    return {};
}

inline nlohmann::json byte_level_tokenizer(const std::vector<std::pair<int, std::string>>& special_tokens = {}) {
    nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
    for (int b = 0; b < 256; ++b) {
        bool taken = false;
        for (const auto& [id, text] : special_tokens) taken = taken || id == b;
        if (!taken) vocab[byte_character(b).toStdString()] = b;
    }
    for (const auto& [id, text] : special_tokens) added.push_back({{"id", id}, {"content", text}, {"special", true}});
    return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}},
            {"added_tokens", added},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
            {"decoder", {{"type", "ByteLevel"}}}};
}

}  // namespace mwb::testing
