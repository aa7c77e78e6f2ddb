// PCRE2 regular expressions (UTF + UCP, JIT-compiled) with the matching rules tokenizer.json patterns
// were written for (Oniguruma in Hugging Face tokenizers).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/result.h"

namespace mwb::tok {

class Regex {
public:
    // `literal` matches the pattern text itself, as tokenizer.json's {"String": ...} patterns do.
    static Result<Regex> compile(std::string_view pattern, bool literal = false);

    // Every non-overlapping match [start, end) of valid UTF-8 `text`, left to right. Empty matches are
    // reported and the search then resumes one character further.
    std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

    // Replaces every match by `replacement` taken literally.
    std::string replace_all(std::string_view text, std::string_view replacement) const;

private:
    struct Code;
    std::shared_ptr<const Code> code_;
};

}  // namespace mwb::tok
