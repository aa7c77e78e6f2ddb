#include "engine/tokenizer/unicode.h"

#include <cstdint>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

namespace mwb::tok::unicode {
namespace {

Result<std::u16string> to_utf16(std::string_view text) {
    UErrorCode status = U_ZERO_ERROR;
    int32_t length = 0;
    u_strFromUTF8(nullptr, 0, &length, text.data(), static_cast<int32_t>(text.size()), &status);
    if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status))
        return make_error(std::string("unicode: cannot convert text to UTF-16: ") + u_errorName(status));
    std::u16string out(static_cast<size_t>(length), u'\0');
    status = U_ZERO_ERROR;
    u_strFromUTF8(out.data(), length, nullptr, text.data(), static_cast<int32_t>(text.size()), &status);
    if (U_FAILURE(status)) return make_error(std::string("unicode: cannot convert text to UTF-16: ") + u_errorName(status));
    return out;
}

Result<std::string> to_utf8(const std::u16string& text) {
    UErrorCode status = U_ZERO_ERROR;
    int32_t length = 0;
    u_strToUTF8(nullptr, 0, &length, text.data(), static_cast<int32_t>(text.size()), &status);
    if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status))
        return make_error(std::string("unicode: cannot convert text to UTF-8: ") + u_errorName(status));
    std::string out(static_cast<size_t>(length), '\0');
    status = U_ZERO_ERROR;
    u_strToUTF8(out.data(), length, nullptr, text.data(), static_cast<int32_t>(text.size()), &status);
    if (U_FAILURE(status)) return make_error(std::string("unicode: cannot convert text to UTF-8: ") + u_errorName(status));
    return out;
}

bool is_ascii(std::string_view text) {
    for (char c : text)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    return true;
}

}  // namespace

bool is_whitespace(char32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

bool is_numeric(char32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    int8_t type = u_charType(static_cast<UChar32>(c));
    return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}

bool is_alphanumeric(char32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_ALPHABETIC) || is_numeric(c);
}

Result<std::string> normalize(std::string_view text, NormalizationForm form) {
    // ASCII is invariant under every normalisation form.
    if (is_ascii(text)) return std::string(text);
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2* normalizer = nullptr;
    switch (form) {
        case NormalizationForm::NFC: normalizer = unorm2_getNFCInstance(&status); break;
        case NormalizationForm::NFD: normalizer = unorm2_getNFDInstance(&status); break;
        case NormalizationForm::NFKC: normalizer = unorm2_getNFKCInstance(&status); break;
        case NormalizationForm::NFKD: normalizer = unorm2_getNFKDInstance(&status); break;
    }
    if (U_FAILURE(status)) return make_error(std::string("unicode: normalizer unavailable: ") + u_errorName(status));
    auto source = to_utf16(text);
    if (!source) return source.error();
    int32_t capacity = static_cast<int32_t>(source->size()) * 4 + 16;
    std::u16string result(static_cast<size_t>(capacity), u'\0');
    int32_t length = unorm2_normalize(normalizer, source->data(), static_cast<int32_t>(source->size()), result.data(),
                                      capacity, &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
        status = U_ZERO_ERROR;
        result.assign(static_cast<size_t>(length), u'\0');
        length = unorm2_normalize(normalizer, source->data(), static_cast<int32_t>(source->size()), result.data(),
                                  length, &status);
    }
    if (U_FAILURE(status)) return make_error(std::string("unicode: normalization failed: ") + u_errorName(status));
    result.resize(static_cast<size_t>(length));
    return to_utf8(result);
}

namespace {

using CaseMapping = int32_t (*)(UChar*, int32_t, const UChar*, int32_t, const char*, UErrorCode*);

Result<std::string> map_case(std::string_view text, CaseMapping mapping, char from, char to) {
    if (is_ascii(text)) {
        std::string out(text);
        for (char& c : out)
            if (c >= from && c <= static_cast<char>(from + 25)) c = static_cast<char>(c - from + to);
        return out;
    }
    auto source = to_utf16(text);
    if (!source) return source.error();
    UErrorCode status = U_ZERO_ERROR;
    int32_t capacity = static_cast<int32_t>(source->size()) * 3 + 16;
    std::u16string result(static_cast<size_t>(capacity), u'\0');
    int32_t length = mapping(result.data(), capacity, source->data(), static_cast<int32_t>(source->size()), "", &status);
    if (U_FAILURE(status)) return make_error(std::string("unicode: case mapping failed: ") + u_errorName(status));
    result.resize(static_cast<size_t>(length));
    return to_utf8(result);
}

}  // namespace

Result<std::string> to_lower(std::string_view text) { return map_case(text, u_strToLower, 'A', 'a'); }

Result<std::string> to_upper(std::string_view text) { return map_case(text, u_strToUpper, 'a', 'A'); }

}  // namespace mwb::tok::unicode
