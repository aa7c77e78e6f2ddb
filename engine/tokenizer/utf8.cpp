#include "engine/tokenizer/utf8.h"

namespace mwb::tok::utf8 {
namespace {

// Length of the well-formed sequence at `pos` (Unicode Table 3-7), or 0 with `consumed` set to the length
// of the maximal ill-formed prefix that has to be replaced by one U+FFFD.
size_t well_formed_length(std::string_view bytes, size_t pos, size_t* consumed) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
    unsigned char lead = byte(pos);
    if (lead < 0x80) return 1;
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;
        if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;
    } else {
        *consumed = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < length && pos + i < bytes.size(); ++i) {
        unsigned char c = byte(pos + i);
        unsigned char lo = i == 1 ? low : 0x80, hi = i == 1 ? high : 0xBF;
        if (c < lo || c > hi) break;
    }
    if (i == length) return length;
    *consumed = i;
    return 0;
}

}  // namespace

bool is_valid(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        if (static_cast<unsigned char>(text[pos]) < 0x80) {
            ++pos;
            continue;
        }
        size_t consumed = 0;
        size_t length = well_formed_length(text, pos, &consumed);
        if (length == 0) return false;
        pos += length;
    }
    return true;
}

char32_t decode(std::string_view text, size_t pos, size_t* length) {
    auto lead = static_cast<unsigned char>(text[pos]);
    size_t n = sequence_length(lead);
    if (pos + n > text.size()) n = 1;
    *length = n;
    if (n == 1) return lead;
    char32_t cp = lead & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
    return cp;
}

void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::u32string to_u32(std::string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        size_t length = 0;
        out.push_back(decode(text, pos, &length));
        pos += length;
    }
    return out;
}

std::string from_u32(std::u32string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char32_t cp : text) append(out, cp);
    return out;
}

std::string from_bytes_lossy(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t consumed = 0;
        size_t length = well_formed_length(bytes, pos, &consumed);
        if (length > 0) {
            out.append(bytes.substr(pos, length));
            pos += length;
        } else {
            out.append(kReplacementCharacter);
            pos += consumed;
        }
    }
    return out;
}

}  // namespace mwb::tok::utf8
