#include "app/documents/retrieval.h"

#include <QHash>
#include <QSet>
#include <QTextBoundaryFinder>
#include <algorithm>
#include <cmath>
#include <queue>

#include "app/documents/embedding_model.h"

namespace mwb::app {

namespace {

// Words too common to tell passages apart; BM25 weighs them little anyway, but OR-ing them in would let any
// chunk match.
const QSet<QString>& stop_words() {
    static const QSet<QString> words = {
        "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have", "how",
        "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "their", "there", "this", "to", "was", "were",
        "what", "when", "where", "which", "who", "whom", "why", "will", "with", "you", "your"};
    return words;
}

double cosine(std::span<const float> a, std::span<const float> b) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        dot += double(a[i]) * b[i];
        na += double(a[i]) * a[i];
        nb += double(b[i]) * b[i];
    }
    return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
}

// The `limit` chunks of `model` most similar to `query`, best first.
Result<QList<Passage>> search_vectors(const DocumentStore& store, const QString& model, std::span<const float> query,
                                      const DocumentScope& scope, int limit) {
    using Scored = std::pair<double, qint64>;
    std::priority_queue<Scored, std::vector<Scored>, std::greater<>> best;  // the smallest of the best on top
    MWB_TRY(store.for_each_vector(model, scope, [&](qint64 chunk_id, std::span<const float> vector) {
        if (vector.size() != query.size()) return;
        best.emplace(cosine(query, vector), chunk_id);
        if (int(best.size()) > limit) best.pop();
    }));
    QList<qint64> ids;
    QHash<qint64, double> scores;
    for (; !best.empty(); best.pop()) {
        ids.prepend(best.top().second);
        scores.insert(best.top().second, best.top().first);
    }
    auto passages = store.passages(ids);
    if (!passages) return passages.error();
    for (Passage& p : *passages) p.score = scores.value(p.chunk_id);
    return passages;
}

}  // namespace

QString fts_query_for(const QString& question) {
    QStringList words, kept;
    QTextBoundaryFinder finder(QTextBoundaryFinder::Word, question);
    int start = 0;
    for (int end = finder.toNextBoundary(); end != -1; end = finder.toNextBoundary()) {
        const QString word = question.mid(start, end - start).toLower();
        start = end;
        if (!std::any_of(word.begin(), word.end(), [](QChar c) { return c.isLetterOrNumber(); })) continue;
        // Apostrophes and other inner punctuation stay inside the quotes; a quote would end them.
        QString quoted = word;
        quoted.replace('"', QLatin1String("\"\""));
        if (words.contains(quoted)) continue;
        words << quoted;
        if (!stop_words().contains(word)) kept << quoted;
    }
    const QStringList& chosen = kept.isEmpty() ? words : kept;
    QStringList terms;
    for (const QString& w : chosen) terms << '"' + w + '"';
    return terms.join(QLatin1String(" OR "));
}

QList<Passage> reciprocal_rank_fusion(const QList<QList<Passage>>& rankings, int limit, int k) {
    QHash<qint64, double> scores;
    QHash<qint64, Passage> first_seen;
    QList<qint64> order;
    for (const QList<Passage>& ranking : rankings)
        for (qsizetype i = 0; i < ranking.size(); ++i) {
            const qint64 id = ranking[i].chunk_id;
            scores[id] += 1.0 / double(k + i + 1);
            if (!first_seen.contains(id)) {
                first_seen.insert(id, ranking[i]);
                order << id;
            }
        }
    // Ties keep the order of first appearance, so the first ranking breaks them.
    std::stable_sort(order.begin(), order.end(), [&](qint64 a, qint64 b) { return scores.value(a) > scores.value(b); });
    QList<Passage> fused;
    for (qint64 id : order) {
        if (fused.size() >= limit) break;
        Passage p = first_seen.value(id);
        p.score = scores.value(id);
        fused << p;
    }
    return fused;
}

Result<Retrieval> retrieve(const DocumentStore& store, EmbeddingModel* embedding, const QString& question,
                           const DocumentScope& scope, const RetrievalOptions& options) {
    Retrieval result;
    QList<Passage> by_text;
    if (const QString match = fts_query_for(question); !match.isEmpty()) {
        auto found = store.search_text(match, scope, options.candidates);
        if (!found) return found.error();
        by_text = *found;
    }
    QList<Passage> by_meaning;
    if (embedding) {
        auto query = embedding->embed_query(question);
        if (!query) return query.error();
        auto found = search_vectors(store, embedding->key(), *query, scope, options.candidates);
        if (!found) return found.error();
        by_meaning = *found;
    }
    result.hybrid = !by_meaning.isEmpty();
    if (!result.hybrid) {
        result.passages = by_text.mid(0, options.top);
        return result;
    }
    result.passages = reciprocal_rank_fusion({by_text, by_meaning}, options.top);
    return result;
}

}  // namespace mwb::app
