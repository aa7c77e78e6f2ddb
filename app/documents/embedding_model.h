// An embedding model for document retrieval: a sentence-transformers checkpoint of an architecture the engine
// runs (gte-Qwen2-1.5B-instruct is a Qwen2 model), opened from its folder and run on our own engine with the
// pooling its files name. Chunks and questions are embedded with the model's "document" / "query" prompts
// when it defines them. Calls from several threads are served one at a time.
#pragma once

#include <QString>
#include <QStringList>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/core/result.h"

namespace mwb {
class TextEmbedder;
}

namespace mwb::app {

class EmbeddingModel {
public:
    // `device` is "cpu" or "cuda" (where the build has CUDA).
    static Result<std::unique_ptr<EmbeddingModel>> open(const QString& folder, const QString& device = QStringLiteral("cpu"));
    ~EmbeddingModel();
    EmbeddingModel(const EmbeddingModel&) = delete;
    EmbeddingModel& operator=(const EmbeddingModel&) = delete;

    // What the vectors are stored under: the model's folder, absolute.
    QString key() const { return key_; }
    int dimension() const;
    Result<std::vector<std::vector<float>>> embed_documents(const QStringList& texts);
    Result<std::vector<float>> embed_query(const QString& question);

private:
    EmbeddingModel(std::unique_ptr<TextEmbedder> embedder, QString key);

    std::unique_ptr<TextEmbedder> embedder_;  // reuses one KV cache: one call at a time
    std::mutex mutex_;
    QString key_;
};

}  // namespace mwb::app
