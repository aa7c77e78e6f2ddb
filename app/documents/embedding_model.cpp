#include "app/documents/embedding_model.h"

#include <QDir>

#include "engine/runtime/text_embedder.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_backend.h"
#endif

namespace mwb::app {

namespace {

// sentence-transformers' usual prompt names; a model with neither embeds documents with its default prompt.
std::string document_prompt(const TextEmbedder& embedder) {
    for (const char* name : {"document", "passage"})
        if (embedder.config().prompts.count(name)) return name;
    return {};
}

}  // namespace

EmbeddingModel::EmbeddingModel(std::unique_ptr<TextEmbedder> embedder, QString key) : embedder_(std::move(embedder)), key_(std::move(key)) {}

EmbeddingModel::~EmbeddingModel() = default;

Result<std::unique_ptr<EmbeddingModel>> EmbeddingModel::open(const QString& folder, const QString& device) {
    BackendFactory factory;
    if (device == QLatin1String("cuda")) {
#ifdef MWB_HAVE_CUDA
        factory = [](std::shared_ptr<const ModelGraph> graph) -> Result<std::unique_ptr<Backend>> {
            auto made = make_cuda_backend(std::move(graph));
            if (!made) return made.error();
            return std::unique_ptr<Backend>(std::move(made.value()));
        };
#else
        return make_error("this build has no CUDA backend; embed on the CPU");
#endif
    } else if (device != QLatin1String("cpu")) {
        return make_error("the embedding device must be cpu or cuda, got '" + device.toStdString() + "'");
    }
    auto embedder = TextEmbedder::open(folder.toStdString(), factory);
    if (!embedder) return embedder.error();
    return std::unique_ptr<EmbeddingModel>(new EmbeddingModel(std::make_unique<TextEmbedder>(std::move(embedder.value())),
                                                              QDir(folder).absolutePath()));
}

int EmbeddingModel::dimension() const { return int(embedder_->dimension()); }

Result<std::vector<std::vector<float>>> EmbeddingModel::embed_documents(const QStringList& texts) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> utf8;
    for (const QString& text : texts) utf8.push_back(text.toStdString());
    return embedder_->embed_texts(utf8, document_prompt(*embedder_));
}

Result<std::vector<float>> EmbeddingModel::embed_query(const QString& question) {
    std::lock_guard lock(mutex_);
    const bool has_query_prompt = embedder_->config().prompts.count("query") > 0;
    auto vectors = embedder_->embed_texts({question.toStdString()}, has_query_prompt ? "query" : "");
    if (!vectors) return vectors.error();
    return std::move(vectors->front());
}

}  // namespace mwb::app
