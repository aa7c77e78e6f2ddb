// libFuzzer: config.json, as the loader parses it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto config = mwb::parse_model_config(std::string(reinterpret_cast<const char*>(data), size));
    if (config.ok()) (void)config->kv_cache_values_per_token();
    return 0;
}
