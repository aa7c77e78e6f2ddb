// Text of chat replies and conversations: R1-style reasoning split from the answer, and exports.
#pragma once

#include <QByteArray>
#include <QList>
#include <QString>

#include "app/services/run_database.h"

namespace mwb::app {

// A reply of a reasoning model: "<think>…</think>answer". R1's newer chat template writes the opening tag into
// the prompt, so a reply may hold only the closing tag; a reply still streaming may hold only the opening one.
struct ReasoningSplit {
    QString thinking;
    QString answer;
    bool has_thinking = false;
    bool thinking_finished = false;  // the closing tag has arrived
};

ReasoningSplit split_reasoning(const QString& reply);

// The conversation as Markdown: a title, then one section per message with its sources (document answers) and
// statistics.
QString chat_to_markdown(const RunRecord& run, const QList<MessageRecord>& messages);
// The OpenAI chat format: {"model": ..., "messages": [{"role": ..., "content": ...}, ...]}.
QByteArray chat_to_openai_json(const RunRecord& run, const QList<MessageRecord>& messages);

// "12 prompt · 40 generated · TTFT 0.12 s · 35.2 tok/s".
QString stats_line(const GenerationStats& stats);

}  // namespace mwb::app
