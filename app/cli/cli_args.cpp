#include "app/cli/cli_args.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>

namespace mwb::cli {

namespace {

// "--NAME PROBLEM, got 'TEXT'": one wording for every option error.
Error option_error(const std::string& name, const std::string& problem, const std::string& text = {}) {
    std::string message = "--";
    message += name;
    message += ' ';
    message += problem;
    if (!text.empty()) {
        message += ", got '";
        message += text;
        message += '\'';
    }
    return make_error(message);
}

}  // namespace

int fail(const std::string& message) {
    std::fprintf(stderr, "mwb: %s\n", message.c_str());
    return 1;
}

Result<CliArgs> CliArgs::parse(int argc, char** argv, const std::set<std::string>& flags, const std::set<std::string>& options) {
    CliArgs args;
    auto unknown = [&](const std::string& name) {
        std::set<std::string> valid = flags;
        valid.insert(options.begin(), options.end());
        std::string list;
        for (const std::string& v : valid) list += (list.empty() ? "--" : ", --") + v;
        return make_error("unknown option --" + name + (list.empty() ? " (this command takes none)" : " (valid: " + list + ")"));
    };
    for (int i = 0; i < argc; ++i) {
        std::string token = argv[i];
        if (token.rfind("--", 0) != 0 || token.size() == 2) {
            args.positionals_.push_back(token);
            continue;
        }
        std::string name = token.substr(2);
        if (auto eq = name.find('='); eq != std::string::npos) {
            if (!options.count(name.substr(0, eq))) return unknown(name.substr(0, eq));
            args.options_[name.substr(0, eq)] = name.substr(eq + 1);
        } else if (!flags.count(name) && !options.count(name)) {
            return unknown(name);
        } else if (flags.count(name)) {
            args.flags_.insert(name);
        } else if (i + 1 < argc) {
            args.options_[name] = argv[++i];
        } else {
            return option_error(name, "needs a value");
        }
    }
    return args;
}

bool CliArgs::has(const std::string& name) const { return options_.count(name) > 0 || flags_.count(name) > 0; }

std::optional<std::string> CliArgs::get(const std::string& name) const {
    auto it = options_.find(name);
    if (it == options_.end()) return std::nullopt;
    return it->second;
}

std::string CliArgs::get_or(const std::string& name, const std::string& fallback) const {
    return get(name).value_or(fallback);
}

Result<double> CliArgs::number_or(const std::string& name, double fallback) const {
    auto text = get(name);
    if (!text) return fallback;
    char* end = nullptr;
    double value = std::strtod(text->c_str(), &end);
    if (text->empty() || *end != '\0') return option_error(name, "expects a number", *text);
    return value;
}

Result<long long> CliArgs::integer_or(const std::string& name, long long fallback) const {
    auto text = get(name);
    if (!text) return fallback;
    long long value = 0;
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || ptr != text->data() + text->size())
        return option_error(name, "expects an integer", *text);
    return value;
}

Result<std::vector<long long>> CliArgs::integer_list(const std::string& name) const {
    std::vector<long long> values;
    auto text = get(name);
    if (!text) return values;
    size_t start = 0;
    while (start <= text->size()) {
        size_t comma = text->find(',', start);
        if (comma == std::string::npos) comma = text->size();
        std::string item = text->substr(start, comma - start);
        long long value = 0;
        auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
        if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
            return option_error(name, "expects comma-separated integers", item);
        values.push_back(value);
        start = comma + 1;
    }
    return values;
}

}  // namespace mwb::cli
