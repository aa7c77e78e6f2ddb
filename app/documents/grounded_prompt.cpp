#include "app/documents/grounded_prompt.h"

#include <QRegularExpression>

namespace mwb::app {

QList<CitedSource> numbered_sources(const QList<Passage>& passages) {
    QList<CitedSource> sources;
    for (const Passage& p : passages) {
        CitedSource s;
        s.number = int(sources.size()) + 1;
        s.document_id = p.document_id;
        s.path = p.path;
        s.document = p.document;
        s.page = p.page;
        s.char_start = p.char_start;
        s.char_end = p.char_end;
        s.text = p.text;
        sources << s;
    }
    return sources;
}

ChatMessage grounded_question(const QString& question, const QList<CitedSource>& sources) {
    QString text = QStringLiteral(
        "Answer the question using only the numbered sources below. After each statement, cite the sources it comes "
        "from in square brackets, like [1] or [2][3]. If the sources do not contain the answer, say that they do not.\n\n");
    for (const CitedSource& s : sources)
        text += QStringLiteral("[%1] %2, page %3:\n%4\n\n").arg(s.number).arg(s.document).arg(s.page).arg(s.text.simplified());
    text += QStringLiteral("Question: ") + question.trimmed();
    return ChatMessage{QStringLiteral("user"), text};
}

namespace {

// "[1]", "[2, 3]", "[1-3]": numbers joined by commas and dashes inside square brackets.
const QRegularExpression& citation_pattern() {
    static const QRegularExpression citation(QStringLiteral("\\[(\\d+(?:\\s*[-–,]\\s*\\d+)*)\\]"));
    return citation;
}
const QRegularExpression& part_pattern() {
    static const QRegularExpression part(QStringLiteral("(\\d+)(?:\\s*[-–]\\s*(\\d+))?"));
    return part;
}

}  // namespace

QList<CitationMark> citation_marks(const QString& answer, int source_count) {
    static const QRegularExpression number(QStringLiteral("\\d+"));
    QList<CitationMark> marks;
    for (auto it = citation_pattern().globalMatch(answer); it.hasNext();) {
        const auto citation = it.next();
        for (auto n = number.globalMatch(answer.mid(citation.capturedStart(1), citation.capturedLength(1))); n.hasNext();) {
            const auto m = n.next();
            const int value = m.captured(0).toInt();
            if (value >= 1 && value <= source_count)
                marks << CitationMark{int(citation.capturedStart(1) + m.capturedStart(0)), int(m.capturedLength(0)), value};
        }
    }
    return marks;
}

QList<int> cited_numbers(const QString& answer, int source_count) {
    QList<int> numbers;
    auto add = [&](int n) {
        if (n >= 1 && n <= source_count && !numbers.contains(n)) numbers << n;
    };
    for (auto it = citation_pattern().globalMatch(answer); it.hasNext();) {
        const QString inside = it.next().captured(1);
        for (auto p = part_pattern().globalMatch(inside); p.hasNext();) {
            const auto m = p.next();
            const int first = m.captured(1).toInt();
            const int last = m.captured(2).isEmpty() ? first : m.captured(2).toInt();
            for (int n = first; n <= last && n <= source_count; ++n) add(n);
        }
    }
    return numbers;
}

}  // namespace mwb::app
