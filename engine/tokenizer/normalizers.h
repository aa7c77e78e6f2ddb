// tokenizer.json "normalizer": text transformations applied before pre-tokenization.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "engine/core/result.h"

namespace mwb::tok {

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual Result<std::string> normalize(std::string text) const = 0;
};

// Supported: Sequence, NFC, NFD, NFKC, NFKD, Replace, Prepend, Strip, Lowercase. A null spec gives nullptr.
Result<std::unique_ptr<Normalizer>> make_normalizer(const nlohmann::json& spec);

}  // namespace mwb::tok
