// Unicode character properties (as Rust's `char` defines them, which Hugging Face tokenizers use) and
// normalisation forms, backed by ICU.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/result.h"

namespace mwb::tok::unicode {

bool is_whitespace(char32_t c);    // White_Space property
bool is_numeric(char32_t c);       // general category Nd, Nl or No
bool is_alphanumeric(char32_t c);  // Alphabetic or numeric

enum class NormalizationForm { NFC, NFD, NFKC, NFKD };

Result<std::string> normalize(std::string_view text, NormalizationForm form);

// Full Unicode case mapping (context-sensitive final sigma included), as Rust's and Python's.
Result<std::string> to_lower(std::string_view text);
Result<std::string> to_upper(std::string_view text);

}  // namespace mwb::tok::unicode
