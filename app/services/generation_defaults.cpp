#include "app/services/generation_defaults.h"

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>

namespace mwb::app {

GenerationDefaults parse_generation_config(const QByteArray& json_text, const SamplingSettings& fallback) {
    GenerationDefaults defaults{fallback, {}};
    QJsonParseError error{};
    const QJsonDocument document = QJsonDocument::fromJson(json_text, &error);
    if (error.error != QJsonParseError::NoError || !document.isObject()) {
        defaults.problem = QStringLiteral("generation_config.json is not a JSON object (%1 at offset %2); using default sampling")
                               .arg(error.errorString())
                               .arg(error.offset);
        return defaults;
    }
    const QJsonObject config = document.object();
    SamplingSettings& s = defaults.sampling;
    auto number = [&](const char* key, double current) { return config.value(key).isDouble() ? config.value(key).toDouble() : current; };
    s.temperature = number("temperature", s.temperature);
    s.top_p = number("top_p", s.top_p);
    s.top_k = int(number("top_k", s.top_k));
    s.min_p = number("min_p", s.min_p);
    s.repetition_penalty = number("repetition_penalty", s.repetition_penalty);
    s.max_new_tokens = int(number("max_new_tokens", s.max_new_tokens));
    // transformers samples only with do_sample; without it a model's temperature/top_p are ignored (greedy).
    if (config.contains("do_sample") && !config.value("do_sample").toBool()) s.temperature = 0;

    if (s.temperature < 0 || s.top_p <= 0 || s.top_p > 1 || s.top_k < 0 || s.min_p < 0 || s.min_p > 1 ||
        s.repetition_penalty <= 0 || s.max_new_tokens < 1) {
        defaults.problem = QStringLiteral("generation_config.json has sampling values out of range; using default sampling");
        defaults.sampling = fallback;
    }
    return defaults;
}

GenerationDefaults load_generation_defaults(const QString& model_directory, const SamplingSettings& fallback) {
    QFile file(QDir(model_directory).filePath("generation_config.json"));
    if (!file.exists()) return {fallback, {}};
    if (!file.open(QIODevice::ReadOnly)) return {fallback, QStringLiteral("cannot read %1: %2").arg(file.fileName(), file.errorString())};
    return parse_generation_config(file.readAll(), fallback);
}

}  // namespace mwb::app
