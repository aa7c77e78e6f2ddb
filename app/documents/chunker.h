// Cuts a page's text into overlapping chunks of a fixed number of word tokens. Tokens here are words and
// numbers as Unicode word boundaries give them, not a model's tokens: the index serves every model and
// every embedding model, and one word is about 1.3 BPE tokens of English.
#pragma once

#include <QList>
#include <QString>

#include "app/documents/document_types.h"

namespace mwb::app {

struct ChunkOptions {
    int tokens = 128;   // words per chunk
    int overlap = 24;   // words shared by consecutive chunks
};

// The chunks of one page, in order; each keeps its character range in `text`. Empty for a page without words.
QList<TextChunk> chunk_page(int page, const QString& text, const ChunkOptions& options = {});

}  // namespace mwb::app
