// The prompt that asks a model to answer from numbered document passages and cite them as [1], [2]; and the
// citations read back from its answer.
#pragma once

#include <QList>
#include <QString>

#include "app/documents/document_types.h"
#include "app/services/chat_types.h"

namespace mwb::app {

// The passages as sources numbered from 1, in retrieval order.
QList<CitedSource> numbered_sources(const QList<Passage>& passages);

// One user message holding the instructions, the sources and the question. DeepSeek recommends putting every
// instruction in the user turn (R1 is trained without system prompts), and other models follow it as well.
ChatMessage grounded_question(const QString& question, const QList<CitedSource>& sources);

// A source number written inside a citation of an answer: where it stands, for making it a link.
struct CitationMark {
    int start = 0;
    int length = 0;
    int number = 0;
};
// Every written number of every citation that names a source (1..source_count), in order.
QList<CitationMark> citation_marks(const QString& answer, int source_count);

// The source numbers an answer cites, in order of first citation, each once: "[1]", "[2][3]", "[1, 4]" and
// "[1-3]" forms; numbers without a source are left out.
QList<int> cited_numbers(const QString& answer, int source_count);

}  // namespace mwb::app
