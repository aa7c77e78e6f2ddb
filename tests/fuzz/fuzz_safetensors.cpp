// libFuzzer: safetensors headers and data regions. Every input is written to a file and opened as a model
// file would be; a file that opens must have every tensor readable within it.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "engine/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = "/tmp/mwb-fuzz-" + std::to_string(::getpid()) + ".safetensors";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    }
    auto file = mwb::SafetensorsFile::open(path);
    if (!file.ok()) return 0;
    uint64_t checksum = 0;
    for (const auto& [name, tensor] : file->tensors())
        for (size_t i = 0; i < tensor.bytes; ++i) checksum += tensor.data[i];
    return checksum == 1 ? 0 : 0;  // the reads are the check (ASan, or a fault past the mapping)
}
