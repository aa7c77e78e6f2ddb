// GPT-2's reversible mapping between bytes and printable characters used by byte-level BPE.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mwb::tok::byte_level {

// UTF-8 spelling of the character that stands for each byte.
const std::array<std::string, 256>& byte_to_text();

// The byte a character stands for, if it is one of the 256 mapped characters.
std::optional<uint8_t> char_to_byte(char32_t c);

// Every byte of `bytes` replaced by its character.
std::string encode(std::string_view bytes);

// Appends the bytes `token` stands for; false (and nothing appended) if a character is not mapped.
bool decode_token(std::string_view token, std::string& bytes);

}  // namespace mwb::tok::byte_level
