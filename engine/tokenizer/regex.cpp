#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer/regex.h"

#include <cstdint>
#include <pcre2.h>

#include "engine/tokenizer/utf8.h"

namespace mwb::tok {

struct Regex::Code {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Code() { pcre2_code_free(code); }
};

namespace {

// One match-data block per thread, big enough for the whole-match offsets every caller needs.
pcre2_match_data* thread_match_data() {
    struct Holder {
        pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
        ~Holder() { pcre2_match_data_free(data); }
    };
    thread_local Holder holder;
    return holder.data;
}

}  // namespace

Result<Regex> Regex::compile(std::string_view pattern, bool literal) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                                     &error_code, &error_offset, nullptr);
    if (!code) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error_code, message, sizeof(message));
        return make_error("regex '" + std::string(pattern) + "' does not compile at offset " +
                          std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
    }
    auto owned = std::make_shared<Code>();
    owned->code = code;
    owned->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    Regex regex;
    regex.code_ = std::move(owned);
    return regex;
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> matches;
    pcre2_match_data* match_data = thread_match_data();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t start = 0;
    while (start <= text.size()) {
        int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), start, 0, match_data, nullptr)
                            : pcre2_match(code_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, match_data,
                                          nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
        size_t match_start = ovector[0], match_end = ovector[1];
        matches.emplace_back(match_start, match_end);
        if (match_end > match_start) {
            start = match_end;
        } else {
            if (match_end >= text.size()) break;
            start = match_end + utf8::sequence_length(static_cast<unsigned char>(text[match_end]));
        }
    }
    return matches;
}

std::string Regex::replace_all(std::string_view text, std::string_view replacement) const {
    std::string out;
    size_t previous = 0;
    for (auto [start, end] : find_all(text)) {
        out.append(text.substr(previous, start - previous));
        out.append(replacement);
        previous = end;
    }
    out.append(text.substr(previous));
    return out;
}

}  // namespace mwb::tok
