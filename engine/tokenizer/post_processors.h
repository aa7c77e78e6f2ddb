// tokenizer.json "post_processor": the special tokens encode(..., add_special_tokens=true) adds.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/core/result.h"

namespace mwb::tok {

class PostProcessor {
public:
    virtual ~PostProcessor() = default;
    virtual void add_special_tokens(std::vector<int32_t>& ids) const = 0;
    // Every id this step can add, for the loader's check against the vocabulary.
    virtual std::vector<int32_t> added_ids() const = 0;
};

// Supported: TemplateProcessing (single sequences), ByteLevel, Sequence, BertProcessing, RobertaProcessing.
// A null spec gives nullptr.
Result<std::unique_ptr<PostProcessor>> make_post_processor(const nlohmann::json& spec);

}  // namespace mwb::tok
