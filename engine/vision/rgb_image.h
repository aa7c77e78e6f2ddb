// An 8-bit RGB picture as the engine takes it: the app and the CLI decode files (QImage) and hand this over.
#pragma once

#include <cstdint>
#include <vector>

namespace mwb {

struct RgbImage {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  // row-major, 3 bytes (R, G, B) per pixel, no padding between rows
};

}  // namespace mwb
