// A command line built flag by flag and written as a shell command with one flag per line, quoting values the
// shell would split or expand (except $VARIABLES meant for the shell).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace mwb::exporters {

class CommandLine {
public:
    explicit CommandLine(std::vector<std::string> program) : program_(std::move(program)) {}
    CommandLine& flag(const std::string& name) {
        items_.push_back({name, "", false});
        return *this;
    }
    CommandLine& option(const std::string& name, const std::string& value) {
        items_.push_back({name, value, true});
        return *this;
    }
    CommandLine& option(const std::string& name, long long value) { return option(name, std::to_string(value)); }
    // The flag names, for the tests that hold them against each engine's real flags.
    std::vector<std::string> flag_names() const;
    // The program and every flag and value as separate words (a container's command, no shell involved).
    std::vector<std::string> words() const;
    std::string shell(const std::string& indent = "  ") const;

private:
    struct Item {
        std::string name, value;
        bool has_value = true;
    };
    std::vector<std::string> program_;
    std::vector<Item> items_;
};

std::string shell_quote(const std::string& value);

}  // namespace mwb::exporters
