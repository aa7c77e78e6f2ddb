#include "plugins/export/command_line.h"

#include <cctype>

namespace mwb::exporters {

std::string shell_quote(const std::string& value) {
    if (value.empty()) return "''";
    bool plain = true;
    for (char c : value)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string("-_./:=,@+%$").find(c) != std::string::npos)) plain = false;
    // A leading $NAME stays expandable: multi-node commands take the head's address from the environment.
    if (plain) return value;
    std::string quoted = "'";
    for (char c : value) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

std::vector<std::string> CommandLine::flag_names() const {
    std::vector<std::string> names;
    for (const auto& item : items_) names.push_back(item.name);
    return names;
}

std::vector<std::string> CommandLine::words() const {
    std::vector<std::string> out = program_;
    for (const auto& item : items_) {
        out.push_back(item.name);
        if (item.has_value) out.push_back(item.value);
    }
    return out;
}

std::string CommandLine::shell(const std::string& indent) const {
    std::string text;
    for (size_t i = 0; i < program_.size(); ++i) text += (i ? " " : "") + shell_quote(program_[i]);
    for (const auto& item : items_) {
        text += " \\\n" + indent + item.name;
        if (item.has_value) text += " " + shell_quote(item.value);
    }
    return text + "\n";
}

}  // namespace mwb::exporters
