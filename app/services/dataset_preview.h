// What the Fine-tune wizard shows of a dataset before training: its format, statistics, the lines that cannot be
// used (with line numbers and why), and the first rows as the model will see them, the learnt tokens marked.
#pragma once

#include <QList>
#include <QPair>
#include <QString>

#include "engine/train/dataset.h"

namespace mwb::app {

struct DatasetPreview {
    QString error;   // the file cannot be used at all
    QString format;  // "alpaca", "messages", "ShareGPT", "text", "pre-tokenized", or "mixed"
    train::DatasetStats stats;
    QList<QPair<qint64, QString>> bad_lines;
    QString html;    // the first rows: learnt tokens highlighted, the rest dimmed
};

// Reads the whole file (bad lines skipped and listed); `tokenizer_directory` is needed for JSONL.
DatasetPreview preview_dataset(const QString& path, const QString& tokenizer_directory, const train::DatasetOptions& options,
                               int rows_shown = 3);

}  // namespace mwb::app
