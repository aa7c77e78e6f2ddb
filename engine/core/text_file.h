// Reading a whole small text file (config.json, tokenizer.json, a template), with errors that name the file.
// Regular files only, opened without blocking and bounded in size: a FIFO, a device such as /dev/zero or a
// directory in a model folder is an error, not a hang or a read of gigabytes. And writing one atomically.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "engine/core/result.h"

namespace mwb {

// Large enough for any tokenizer.json (the DeepSeek-V3 one is 7.5 MB) or sharded index.
constexpr size_t kMaxTextFileBytes = size_t(256) << 20;

inline Result<std::string> read_text_file(const std::string& path, size_t max_bytes = kMaxTextFileBytes) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return make_error("cannot open " + path + ": " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        ::close(fd);
        return make_error(path + " is not a regular file" + (S_ISDIR(info.st_mode) ? " (it is a directory)" : ""));
    }
    if (size_t(info.st_size) > max_bytes) {
        ::close(fd);
        return make_error(path + " is " + std::to_string(info.st_size) + " bytes, more than the " + std::to_string(max_bytes) +
                          " a text file here may have");
    }
    std::string contents(size_t(info.st_size), '\0');
    size_t done = 0;
    while (done < contents.size()) {
        const ssize_t got = ::read(fd, contents.data() + done, contents.size() - done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            const int error = errno;
            ::close(fd);
            return make_error("cannot read " + path + (got < 0 ? std::string(": ") + std::strerror(error) : ": it shrank while being read"));
        }
        done += size_t(got);
    }
    ::close(fd);
    return contents;
}

// The last component of a folder's path, "DeepSeek-V3" for ".../DeepSeek-V3/" too: a model's default name.
inline std::string folder_name(const std::string& path) {
    const std::filesystem::path normal = std::filesystem::path(path).lexically_normal();
    return normal.has_filename() ? normal.filename().string() : normal.parent_path().filename().string();
}

// Written beside `path` and renamed over it, so that a killed process leaves the old file or the new one.
inline Status write_text_file_atomically(const std::string& path, const std::string& text) {
    const std::string temporary = path + ".partial";
    {
        std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
        file << text;
        file.flush();
        if (!file) return make_error("cannot write " + temporary + ": check that the folder is writable and the disk has room");
    }
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) return make_error("cannot rename " + temporary + " to " + path + ": " + error.message());
    return Status::success();
}

}  // namespace mwb
