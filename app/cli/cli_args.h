// Command-line arguments of one `mwb` subcommand: positionals plus `--name value` options and `--flag`s.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/core/result.h"

namespace mwb::cli {

class CliArgs {
public:
    // `flags` names the options that take no value, `options` those that take one (`--name value` or
    // `--name=value`). Any other `--name` is an error that lists the valid ones.
    static Result<CliArgs> parse(int argc, char** argv, const std::set<std::string>& flags, const std::set<std::string>& options);

    const std::vector<std::string>& positionals() const { return positionals_; }
    bool has(const std::string& name) const;
    std::optional<std::string> get(const std::string& name) const;
    std::string get_or(const std::string& name, const std::string& fallback) const;
    Result<double> number_or(const std::string& name, double fallback) const;
    Result<long long> integer_or(const std::string& name, long long fallback) const;
    Result<std::vector<long long>> integer_list(const std::string& name) const;

private:
    std::vector<std::string> positionals_;
    std::map<std::string, std::string> options_;
    std::set<std::string> flags_;
};

// Prints "mwb: MESSAGE" to stderr and returns the exit code of a failed command.
int fail(const std::string& message);

}  // namespace mwb::cli
