// Default sampling of a model folder, from its generation_config.json (as transformers' GenerationConfig
// reads it). A missing file means the workbench defaults; a broken one is reported, not fatal.
#pragma once

#include <QString>

#include "app/services/chat_types.h"

namespace mwb::app {

struct GenerationDefaults {
    SamplingSettings sampling;
    QString problem;  // non-empty when generation_config.json exists but could not be used
};

// Parses the text of a generation_config.json over `fallback`.
GenerationDefaults parse_generation_config(const QByteArray& json_text, const SamplingSettings& fallback = {});
GenerationDefaults load_generation_defaults(const QString& model_directory, const SamplingSettings& fallback = {});

}  // namespace mwb::app
