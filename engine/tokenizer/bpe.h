// tokenizer.json "model" of type BPE: vocabulary, ranked merges and the per-word merge loop.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/result.h"

namespace mwb::tok {

class BpeModel {
public:
    static Result<BpeModel> from_json(const nlohmann::json& model);

    // Appends the ids of one pre-tokenized word. False when it holds a character the vocabulary lacks and
    // the unk_token it should become is itself missing from the vocabulary.
    bool tokenize(std::string_view word, std::vector<int32_t>& ids) const;
    const std::string& unk_token() const { return unk_token_; }

    std::optional<int32_t> token_to_id(std::string_view token) const;
    const std::string* id_to_token(int32_t id) const;
    // One past the largest id in the vocabulary.
    size_t id_bound() const { return id_to_token_.size(); }
    size_t vocab_size() const { return vocab_.size(); }

private:
    struct StringHash {
        using is_transparent = void;
        size_t operator()(std::string_view text) const { return std::hash<std::string_view>()(text); }
    };
    struct Merge {
        int32_t rank;
        int32_t new_id;
    };
    struct WordCache {
        std::mutex mutex;
        std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
    };

    bool merge_word(std::string_view word, std::vector<int32_t>& ids) const;
    const Merge* find_merge(int32_t left, int32_t right) const;

    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
    std::vector<std::string> id_to_token_;
    std::vector<int32_t> char_ids_;  // id of each single-character token below U+10000, or -1
    std::unordered_map<uint64_t, Merge> merges_;
    std::string unk_token_;
    std::optional<int32_t> unk_id_;
    bool fuse_unk_ = false;
    bool byte_fallback_ = false;
    bool ignore_merges_ = false;
    std::string continuing_subword_prefix_;
    std::string end_of_word_suffix_;
    std::shared_ptr<WordCache> cache_ = std::make_shared<WordCache>();
};

}  // namespace mwb::tok
