// libFuzzer: any text through the real DeepSeek-V3 tokenizer (normaliser, pre-tokenizer regexes, added tokens,
// BPE), then decoded, and streamed back through the detokenizer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/tokenizer/streaming_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const mwb::tok::Tokenizer tokenizer = [] {
        auto loaded = mwb::tok::Tokenizer::load(MWB_FUZZ_TOKENIZER_DIR);
        if (!loaded.ok()) {
            std::fprintf(stderr, "cannot load the tokenizer: %s\n", loaded.error().message.c_str());
            std::abort();
        }
        return std::move(loaded.value());
    }();
    auto ids = tokenizer.encode(std::string_view(reinterpret_cast<const char*>(data), size), true);
    if (!ids.ok()) return 0;
    (void)tokenizer.decode(*ids, false);
    mwb::tok::StreamingDetokenizer stream(tokenizer, true);
    for (int32_t id : *ids) (void)stream.push(id);
    (void)stream.finish();
    return 0;
}
