// Values that Kubernetes and Compose read as strings must be written quoted: an unquoted 8000 or true in a
// container's command or an annotation is a number or a boolean to YAML, and the API server rejects it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace mwb::exporters {

inline void quoted_sequence(YAML::Emitter& out, const std::vector<std::string>& words) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& word : words) out << YAML::DoubleQuoted << word;
    out << YAML::EndSeq;
}

inline void quoted_value(YAML::Emitter& out, const std::string& key, const std::string& value) {
    out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
}

}  // namespace mwb::exporters
