// tokenizer.json "decoder": turns token strings back into text.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace mwb::tok {

class Decoder {
public:
    virtual ~Decoder() = default;
    // Rewrites the token strings; the decoded text is their concatenation once every step has run.
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Supported: Sequence, ByteLevel, Replace, Strip, Fuse, ByteFallback, Metaspace. A null spec gives nullptr.
Result<std::unique_ptr<Decoder>> make_decoder(const nlohmann::json& spec);

}  // namespace mwb::tok
