// UTF-8 helpers shared by the tokenizer pipeline and the template interpreter.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mwb::tok::utf8 {

// Bytes in the sequence that starts with `lead`; 1 for a byte that cannot start one, so loops always advance.
inline size_t sequence_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 1;
}

bool is_valid(std::string_view text);

// Decodes the code point starting at `pos` of valid UTF-8 and stores its byte length in `length`.
char32_t decode(std::string_view text, size_t pos, size_t* length);

void append(std::string& out, char32_t code_point);

std::u32string to_u32(std::string_view text);
std::string from_u32(std::u32string_view text);

// Like Rust's String::from_utf8_lossy: every maximal ill-formed subsequence becomes one U+FFFD.
std::string from_bytes_lossy(std::string_view bytes);

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace mwb::tok::utf8
