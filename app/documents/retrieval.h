// Finding the passages that answer a question: BM25 over the chunks' FTS5 index, cosine similarity over
// the chunk vectors of an embedding model when one is open, and the two rankings fused by Reciprocal Rank
// Fusion (Cormack, Clarke & Büttcher, SIGIR 2009): score = Σ 1 / (k + rank), k = 60, ranks from 1.
#pragma once

#include <QList>
#include <QString>

#include "app/documents/document_store.h"
#include "app/documents/document_types.h"
#include "engine/core/result.h"

namespace mwb::app {

class EmbeddingModel;

// An FTS5 MATCH expression for a free-text question: its words, each quoted (so that no word is read as FTS5
// syntax), joined by OR so that a chunk need not hold them all; common English words are left out unless
// nothing else is left. Empty when the question has no words.
QString fts_query_for(const QString& question);

// Fuses rankings (each best first) into one, best first, at most `limit` long. Passages are the same when
// their chunk ids are; each keeps its first appearance, with the fused score.
QList<Passage> reciprocal_rank_fusion(const QList<QList<Passage>>& rankings, int limit, int k = 60);

struct RetrievalOptions {
    int top = 5;          // passages handed to the model
    int candidates = 50;  // taken from each ranking before fusion
};

struct Retrieval {
    QList<Passage> passages;
    bool hybrid = false;  // false: BM25 alone (no embedding model open, or it has no vectors in scope)
};

// Best first. `embedding` may be null.
Result<Retrieval> retrieve(const DocumentStore& store, EmbeddingModel* embedding, const QString& question,
                           const DocumentScope& scope, const RetrievalOptions& options = {});

}  // namespace mwb::app
