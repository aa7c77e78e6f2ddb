#include "engine/tokenizer/bpe.h"

#include <cstdint>
#include <queue>

#include "engine/tokenizer/json_spec.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok {
namespace {

constexpr int64_t kMaxTokenId = 1 << 24;     // far above any real vocabulary; bounds the id table
constexpr size_t kMaxCachedWords = 200000;   // words remembered by the per-word cache
constexpr size_t kMaxCachedWordBytes = 256;  // longer words are rare and not worth remembering

uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::string byte_token(unsigned char byte) {
    static const char* digits = "0123456789ABCDEF";
    return std::string("<0x") + digits[byte >> 4] + digits[byte & 15] + ">";
}

}  // namespace

Result<BpeModel> BpeModel::from_json(const nlohmann::json& model) {
    const std::string component = "model 'BPE'";
    if (!model.is_object()) return make_error("model must be a JSON object");
    if (auto type = model.find("type"); type != model.end()) {
        if (!type->is_string()) return make_error("model field 'type' must be a string");
        if (*type != "BPE") return make_error("model type '" + type->get<std::string>() + "' is not supported");
    }
    if (auto dropout = model.find("dropout"); dropout != model.end() && !dropout->is_null()) {
        if (!dropout->is_number() || dropout->get<double>() != 0.0)
            return make_error(component + ": dropout is not supported (it makes encoding random)");
    }
    BpeModel bpe;
    auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_object()) return make_error(component + ": field 'vocab' must be an object");
    bpe.vocab_.reserve(vocab->size());
    int64_t max_id = -1;
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= kMaxTokenId)
            return make_error(component + ": vocab entry '" + it.key() + "' must have an id between 0 and " +
                              std::to_string(kMaxTokenId - 1));
        int64_t id = it.value().get<int64_t>();
        bpe.vocab_.emplace(it.key(), static_cast<int32_t>(id));
        max_id = std::max(max_id, id);
    }
    bpe.id_to_token_.resize(static_cast<size_t>(max_id + 1));
    bpe.char_ids_.assign(0x10000, -1);
    for (const auto& [token, id] : bpe.vocab_) {
        bpe.id_to_token_[static_cast<size_t>(id)] = token;
        if (!token.empty() && utf8::is_valid(token)) {
            size_t length = 0;
            char32_t c = utf8::decode(token, 0, &length);
            if (length == token.size() && c < 0x10000) bpe.char_ids_[c] = id;
        }
    }

    auto unk = spec::string_field_or(model, "unk_token", "", component);
    if (!unk) return unk.error();
    bpe.unk_token_ = *unk;
    if (!unk->empty()) {
        if (auto it = bpe.vocab_.find(*unk); it != bpe.vocab_.end()) bpe.unk_id_ = it->second;
    }
    auto fuse_unk = spec::bool_field_or(model, "fuse_unk", false, component);
    if (!fuse_unk) return fuse_unk.error();
    auto byte_fallback = spec::bool_field_or(model, "byte_fallback", false, component);
    if (!byte_fallback) return byte_fallback.error();
    auto ignore_merges = spec::bool_field_or(model, "ignore_merges", false, component);
    if (!ignore_merges) return ignore_merges.error();
    auto prefix = spec::string_field_or(model, "continuing_subword_prefix", "", component);
    if (!prefix) return prefix.error();
    auto suffix = spec::string_field_or(model, "end_of_word_suffix", "", component);
    if (!suffix) return suffix.error();
    bpe.fuse_unk_ = *fuse_unk;
    bpe.byte_fallback_ = *byte_fallback;
    bpe.ignore_merges_ = *ignore_merges;
    bpe.continuing_subword_prefix_ = *prefix;
    bpe.end_of_word_suffix_ = *suffix;

    auto merges = model.find("merges");
    if (merges == model.end() || !merges->is_array()) return make_error(component + ": field 'merges' must be an array");
    bpe.merges_.reserve(merges->size());
    int32_t rank = 0;
    for (const auto& merge : *merges) {
        std::string left, right;
        if (merge.is_string()) {
            const auto& line = merge.get_ref<const std::string&>();
            size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
                return make_error(component + ": merge " + std::to_string(rank + 1) + " ('" + line +
                                  "') must be two tokens separated by one space");
            left = line.substr(0, space);
            right = line.substr(space + 1);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
            left = merge[0].get<std::string>();
            right = merge[1].get<std::string>();
        } else {
            return make_error(component + ": merge " + std::to_string(rank + 1) +
                              " must be \"a b\" or [\"a\", \"b\"]");
        }
        std::string merged = left + (right.rfind(bpe.continuing_subword_prefix_, 0) == 0
                                         ? right.substr(bpe.continuing_subword_prefix_.size())
                                         : right);
        auto left_id = bpe.vocab_.find(left), right_id = bpe.vocab_.find(right), merged_id = bpe.vocab_.find(merged);
        if (left_id == bpe.vocab_.end() || right_id == bpe.vocab_.end() || merged_id == bpe.vocab_.end())
            return make_error(component + ": merge " + std::to_string(rank + 1) + " ('" + left + "' + '" + right +
                              "') uses a token missing from the vocabulary");
        // A repeated pair keeps its last rank, as in Hugging Face tokenizers.
        bpe.merges_[pair_key(left_id->second, right_id->second)] = Merge{rank, merged_id->second};
        ++rank;
    }
    return bpe;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
    const std::string& token = id_to_token_[static_cast<size_t>(id)];
    if (token.empty() && !vocab_.count(token)) return nullptr;
    return &token;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
    auto it = merges_.find(pair_key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
}

bool BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
    if (word.empty()) return true;
    if (ignore_merges_) {
        if (auto it = vocab_.find(word); it != vocab_.end()) {
            ids.push_back(it->second);
            return true;
        }
    }
    bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
        std::lock_guard lock(cache_->mutex);
        if (auto it = cache_->words.find(word); it != cache_->words.end()) {
            ids.insert(ids.end(), it->second.begin(), it->second.end());
            return true;
        }
    }
    size_t first = ids.size();
    if (!merge_word(word, ids)) return false;
    if (cacheable) {
        std::lock_guard lock(cache_->mutex);
        if (cache_->words.size() < kMaxCachedWords)
            cache_->words.emplace(std::string(word), std::vector<int32_t>(ids.begin() + static_cast<long>(first), ids.end()));
    }
    return true;
}

bool BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
    struct Symbol {
        int32_t id;
        int32_t prev, next;
        bool removed;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    const auto add_symbol = [&](int32_t id) {
        int32_t index = static_cast<int32_t>(symbols.size());
        symbols.push_back({id, index - 1, index + 1, false});
    };
    const bool plain = continuing_subword_prefix_.empty() && end_of_word_suffix_.empty();
    // A run of unknown characters waiting to become one (fused) or several unk tokens.
    int32_t pending_unks = 0;
    const auto flush_unks = [&] {
        for (; pending_unks > 0; --pending_unks) add_symbol(*unk_id_);
    };
    std::string piece;
    for (size_t pos = 0; pos < word.size();) {
        size_t length = 0;
        char32_t c = utf8::decode(word, pos, &length);
        int32_t id = -1;
        if (plain && c < 0x10000) {
            id = char_ids_[c];
            if (id < 0) piece.assign(word.substr(pos, length));
        } else {
            piece.clear();
            if (pos > 0) piece += continuing_subword_prefix_;
            piece += word.substr(pos, length);
            if (pos + length == word.size()) piece += end_of_word_suffix_;
            if (auto it = vocab_.find(piece); it != vocab_.end()) id = it->second;
        }
        pos += length;
        if (id >= 0) {
            flush_unks();
            add_symbol(id);
            continue;
        }
        if (byte_fallback_) {
            std::vector<int32_t> byte_ids;
            for (char byte : piece) {
                auto it = vocab_.find(byte_token(static_cast<unsigned char>(byte)));
                if (it == vocab_.end()) break;
                byte_ids.push_back(it->second);
            }
            if (byte_ids.size() == piece.size()) {
                flush_unks();
                for (int32_t byte_id : byte_ids) add_symbol(byte_id);
                continue;
            }
        }
        if (!unk_token_.empty()) {
            if (!unk_id_) return false;
            pending_unks = fuse_unk_ ? 1 : pending_unks + 1;
        }
    }
    flush_unks();
    if (symbols.empty()) return true;
    symbols.back().next = -1;

    struct Candidate {
        int32_t rank, pos, new_id;
        bool operator<(const Candidate& other) const {
            return rank != other.rank ? rank > other.rank : pos > other.pos;
        }
    };
    std::priority_queue<Candidate> queue;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        if (const Merge* merge = find_merge(symbols[i].id, symbols[i + 1].id))
            queue.push({merge->rank, static_cast<int32_t>(i), merge->new_id});
    }
    while (!queue.empty()) {
        Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<size_t>(top.pos)];
        if (left.removed || left.next < 0) continue;
        Symbol& right = symbols[static_cast<size_t>(left.next)];
        const Merge* current = find_merge(left.id, right.id);
        if (!current || current->new_id != top.new_id) continue;  // stale entry
        left.id = top.new_id;
        right.removed = true;
        left.next = right.next;
        if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
        if (left.prev >= 0) {
            if (const Merge* merge = find_merge(symbols[static_cast<size_t>(left.prev)].id, left.id))
                queue.push({merge->rank, left.prev, merge->new_id});
        }
        if (left.next >= 0) {
            if (const Merge* merge = find_merge(left.id, symbols[static_cast<size_t>(left.next)].id))
                queue.push({merge->rank, top.pos, merge->new_id});
        }
    }
    for (const auto& symbol : symbols)
        if (!symbol.removed) ids.push_back(symbol.id);
    return true;
}

}  // namespace mwb::tok
