#include "engine/tokenizer/byte_level.h"

#include <cstdint>

#include "engine/tokenizer/utf8.h"

namespace mwb::tok::byte_level {
namespace {

struct Tables {
    std::array<std::string, 256> byte_to_text;
    std::array<int16_t, 512> char_to_byte;  // every mapped character is below U+0144

    Tables() {
        char_to_byte.fill(-1);
        uint32_t next_unprintable = 256;
        for (uint32_t byte = 0; byte < 256; ++byte) {
            bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
            char32_t c = printable ? byte : next_unprintable++;
            utf8::append(byte_to_text[byte], c);
            char_to_byte[c] = static_cast<int16_t>(byte);
        }
    }
};

const Tables& tables() {
    static const Tables instance;
    return instance;
}

}  // namespace

const std::array<std::string, 256>& byte_to_text() { return tables().byte_to_text; }

std::optional<uint8_t> char_to_byte(char32_t c) {
    if (c >= 512 || tables().char_to_byte[c] < 0) return std::nullopt;
    return static_cast<uint8_t>(tables().char_to_byte[c]);
}

std::string encode(std::string_view bytes) {
    const auto& map = tables().byte_to_text;
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char byte : bytes) out += map[static_cast<unsigned char>(byte)];
    return out;
}

bool decode_token(std::string_view token, std::string& bytes) {
    size_t mark = bytes.size();
    for (size_t pos = 0; pos < token.size();) {
        size_t length = 0;
        char32_t c = utf8::decode(token, pos, &length);
        auto byte = char_to_byte(c);
        if (!byte) {
            bytes.resize(mark);
            return false;
        }
        bytes.push_back(static_cast<char>(*byte));
        pos += length;
    }
    return true;
}

}  // namespace mwb::tok::byte_level
