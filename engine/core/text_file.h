// Reading a whole small text file (config.json, tokenizer.json, a template), with errors that name the file.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "engine/core/result.h"

namespace mwb {

inline Result<std::string> read_text_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return make_error("cannot open " + path);
    std::ostringstream contents;
    contents << file.rdbuf();
    if (file.bad()) return make_error("cannot read " + path);
    return contents.str();
}

}  // namespace mwb
