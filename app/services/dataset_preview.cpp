#include "app/services/dataset_preview.h"

#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSet>

#include <optional>

#include "engine/tokenizer/tokenizer.h"
#include "engine/train/lora_model.h"

namespace mwb::app {

namespace {

// The format of the first lines that parse as JSON objects.
QString detect_format(const QString& path) {
    if (!train::needs_tokenizer(path.toStdString())) return QStringLiteral("pre-tokenized");
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) return {};
    QSet<QString> formats;
    for (int lines = 0; lines < 50 && !file.atEnd(); ++lines) {
        const QJsonObject object = QJsonDocument::fromJson(file.readLine()).object();
        if (object.contains("messages")) formats << "messages";
        else if (object.contains("conversations")) formats << "ShareGPT";
        else if (object.contains("instruction")) formats << "alpaca";
        else if (object.contains("text")) formats << "text";
    }
    if (formats.size() == 1) return *formats.begin();
    return formats.isEmpty() ? QStringLiteral("unknown") : QStringLiteral("mixed");
}

}  // namespace

DatasetPreview preview_dataset(const QString& path, const QString& tokenizer_directory, const train::DatasetOptions& options, int rows_shown) {
    DatasetPreview preview;
    preview.format = detect_format(path);
    std::optional<tok::Tokenizer> tokenizer;
    if (train::needs_tokenizer(path.toStdString())) {
        auto loaded = tok::Tokenizer::load(tokenizer_directory.toStdString());
        if (!loaded) {
            preview.error = QString::fromStdString(loaded.error().message);
            return preview;
        }
        tokenizer = std::move(loaded.value());
    }
    train::DatasetOptions skipping = options;
    skipping.skip_bad_lines = true;
    auto dataset = train::load_dataset(path.toStdString(), tokenizer ? &*tokenizer : nullptr, skipping);
    if (!dataset) {
        preview.error = QString::fromStdString(dataset.error().message);
        return preview;
    }
    preview.stats = dataset->stats;
    for (const auto& [line, message] : dataset->stats.bad_lines) preview.bad_lines << qMakePair(qint64(line), QString::fromStdString(message));
    // Each token as text; a run of learnt tokens in bold on a green background, the prompt dimmed.
    for (int r = 0; r < rows_shown && r < int(dataset->rows.size()); ++r) {
        const train::TokenRow& row = dataset->rows[size_t(r)];
        QString html = QStringLiteral("<p style='margin-bottom:10px'>");
        for (size_t t = 0; t < row.ids.size(); ++t) {
            const QString text = tokenizer ? QString::fromStdString(tokenizer->decode({&row.ids[t], 1}, false)).toHtmlEscaped()
                                           : QString::number(row.ids[t]) + " ";
            const bool learnt = t > 0 && row.labels[t] != train::kIgnoredLabel;
            html += learnt ? QStringLiteral("<span style='background:#c8f0c8;font-weight:bold'>%1</span>").arg(text)
                           : QStringLiteral("<span style='color:#888888'>%1</span>").arg(text);
        }
        preview.html += html.replace('\n', QStringLiteral("⏎<br>")) + QStringLiteral("</p><hr>");
    }
    return preview;
}

}  // namespace mwb::app
