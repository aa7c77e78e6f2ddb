#include "app/services/chat_text.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace mwb::app {

ReasoningSplit split_reasoning(const QString& reply) {
    static const QString open = QStringLiteral("<think>");
    static const QString close = QStringLiteral("</think>");
    ReasoningSplit split;
    const qsizetype open_at = reply.indexOf(open);
    const qsizetype close_at = reply.indexOf(close);
    // Only leading whitespace may precede the opening tag; a tag later in the answer is content.
    const bool opens = open_at >= 0 && reply.left(open_at).trimmed().isEmpty();
    if (!opens && close_at < 0) {
        split.answer = reply;
        return split;
    }
    split.has_thinking = true;
    const qsizetype thinking_start = opens ? open_at + open.size() : 0;
    if (close_at >= thinking_start) {
        split.thinking = reply.mid(thinking_start, close_at - thinking_start).trimmed();
        split.answer = reply.mid(close_at + close.size()).trimmed();
        split.thinking_finished = true;
    } else {
        split.thinking = reply.mid(thinking_start).trimmed();
    }
    return split;
}

QString stats_line(const GenerationStats& s) {
    QStringList parts;
    parts << QStringLiteral("%1 prompt tokens").arg(s.prompt_tokens) << QStringLiteral("%1 generated").arg(s.generated_tokens)
          << QStringLiteral("TTFT %1 s").arg(s.time_to_first_token_s, 0, 'f', 2)
          << QStringLiteral("%1 tok/s").arg(s.decode_tokens_per_s, 0, 'f', 1);
    if (s.finish_reason == "cancelled") parts << QStringLiteral("stopped");
    else if (s.finish_reason == "length") parts << QStringLiteral("max tokens reached");
    else if (s.finish_reason == "context_full") parts << QStringLiteral("context full");
    return parts.join(QStringLiteral(" · "));
}

QString chat_to_markdown(const RunRecord& run, const QList<MessageRecord>& messages) {
    QString md = QStringLiteral("# %1\n\n").arg(run.title);
    md += QStringLiteral("- Model: `%1`\n- Started: %2\n\n").arg(run.model, run.created_at.toString(Qt::ISODate));
    for (const MessageRecord& m : messages) {
        QString role = m.role;
        if (!role.isEmpty()) role[0] = role[0].toUpper();
        md += QStringLiteral("## %1\n\n%2\n\n").arg(role, m.content.trimmed());
        for (const CitedSource& source : m.sources)
            md += QStringLiteral("%1. %2, page %3: \"%4\"\n").arg(source.number).arg(source.document).arg(source.page).arg(source.text.simplified());
        if (!m.sources.isEmpty()) md += '\n';
        if (m.has_stats) md += QStringLiteral("*%1*\n\n").arg(stats_line(m.stats));
    }
    return md;
}

QByteArray chat_to_openai_json(const RunRecord& run, const QList<MessageRecord>& messages) {
    QJsonArray array;
    for (const MessageRecord& m : messages) array.append(QJsonObject{{"role", m.role}, {"content", m.content}});
    return QJsonDocument(QJsonObject{{"model", run.model}, {"messages", array}}).toJson(QJsonDocument::Indented);
}

}  // namespace mwb::app
