#include "app/services/generation_defaults.h"

#include <QDir>
#include <QFile>

#include "engine/runtime/generation_config.h"

namespace mwb::app {

GenerationDefaults parse_generation_config(const QByteArray& json_text, const SamplingSettings& fallback) {
    GenerationDefaults defaults{fallback, {}};
    auto config = mwb::parse_generation_config(json_text.toStdString());
    if (!config) {
        defaults.problem = QString::fromStdString(config.error().message) + QStringLiteral("; using default sampling");
        return defaults;
    }
    auto sampling = sampling_from(*config, fallback);
    const int max_new_tokens = config->max_new_tokens ? int(*config->max_new_tokens) : fallback.max_new_tokens;
    if (!sampling || max_new_tokens < 1) {
        defaults.problem = QStringLiteral("generation_config.json has sampling values out of range; using default sampling");
        return defaults;
    }
    static_cast<SamplingParams&>(defaults.sampling) = *sampling;
    defaults.sampling.max_new_tokens = max_new_tokens;
    return defaults;
}

GenerationDefaults load_generation_defaults(const QString& model_directory, const SamplingSettings& fallback) {
    QFile file(QDir(model_directory).filePath("generation_config.json"));
    if (!file.exists()) return {fallback, {}};
    if (!file.open(QIODevice::ReadOnly)) return {fallback, QStringLiteral("cannot read %1: %2").arg(file.fileName(), file.errorString())};
    return parse_generation_config(file.readAll(), fallback);
}

}  // namespace mwb::app
