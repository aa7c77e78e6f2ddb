// libFuzzer: tokenizer.json. A file that loads must then encode and decode a fixed text.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto tokenizer = mwb::tok::Tokenizer::from_json(std::string(reinterpret_cast<const char*>(data), size), "", "");
    if (!tokenizer.ok()) return 0;
    auto ids = tokenizer->encode("Hello, world! 12345 ab abc <s>", true);
    if (ids.ok()) (void)tokenizer->decode(*ids, false);
    return 0;
}
