// tokenizer.json "pre_tokenizer": splits normalized text into the words the model encodes one by one.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace mwb::tok {

struct PreToken {
    std::string text;
    bool at_input_start = false;  // begins at offset 0 of the original input (Metaspace's "first" scheme)
};

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    // Replaces `pieces` by their split (and possibly rewritten) parts, dropping empty ones.
    virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

// Supported: Sequence, Split, ByteLevel, Digits, Metaspace. A null spec gives nullptr.
Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const nlohmann::json& spec);

}  // namespace mwb::tok
