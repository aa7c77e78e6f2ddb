#include "app/services/vision_input.h"

#include <QObject>
#include <algorithm>

#include "app/vision/image_file.h"
#include "engine/vision/image_prompt.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_vision_encoder.h"
#endif

namespace mwb::app {

QStringList conversation_images(const QList<ChatMessage>& messages) {
    QStringList images;
    for (const ChatMessage& m : messages) images << m.images;
    return images;
}

Result<std::unique_ptr<VisionInput>> VisionInput::load(std::shared_ptr<const ModelGraph> graph, const QString& directory, bool cuda,
                                                       int threads) {
    std::unique_ptr<ImageEncoder> encoder;
    if (cuda) {
#ifdef MWB_HAVE_CUDA
        auto on_gpu = CudaVisionEncoder::load(std::move(graph));
        if (!on_gpu) return on_gpu.error();
        encoder = std::move(on_gpu.value());
#else
        return make_error("this build has no CUDA backend");
#endif
    } else {
        auto on_cpu = VisionEncoder::load(std::move(graph), threads);
        if (!on_cpu) return on_cpu.error();
        encoder = std::make_unique<VisionEncoder>(std::move(on_cpu.value()));
    }
    auto processor = load_image_processor_config(directory.toStdString());
    if (!processor) return processor.error();
    return std::unique_ptr<VisionInput>(new VisionInput(std::move(encoder), *processor));
}

Result<QList<ChatMessage>> VisionInput::with_placeholders(const QList<ChatMessage>& messages, const tok::Tokenizer& tokenizer) const {
    auto placeholder = tokenizer.id_to_token(encoder_->image_token_id());
    if (!placeholder)
        return make_error("the tokenizer has no token " + std::to_string(encoder_->image_token_id()) + " for images (the model's image_token_id)");
    QList<ChatMessage> marked = messages;
    for (ChatMessage& m : marked) m.content = QString::fromStdString(*placeholder).repeated(int(m.images.size())) + m.content;
    return marked;
}

Result<std::vector<InspectedImage>> VisionInput::attach(const QStringList& conversation_images, GenerationRequest& request) {
    const int32_t image_token = encoder_->image_token_id();
    auto expanded = expand_image_placeholders(request.prompt, image_token, encoder_->tokens_per_image());
    if (!expanded) return expanded.error();
    request.prompt = std::move(expanded.value());
    const auto image_tokens = std::count(request.prompt.begin(), request.prompt.end(), image_token);
    const qsizetype kept = qsizetype(image_tokens / encoder_->tokens_per_image());
    if (kept > conversation_images.size()) return make_error("the prompt has more image placeholders than the conversation has images");
    std::vector<float> features;
    std::vector<InspectedImage> shown;
    for (const QString& file : conversation_images.mid(conversation_images.size() - kept)) {
        shown.push_back({file, {}});
        auto image = read_image_file(file);
        if (!image) return image.error();
        auto pixels = preprocess_image(*image, processor_);
        if (!pixels) return pixels.error();
        auto encoded = encoder_->encode(*pixels);
        if (!encoded) return encoded.error();
        features.insert(features.end(), encoded->begin(), encoded->end());
    }
    auto overrides = image_embedding_overrides(request.prompt, image_token, features, encoder_->feature_width());
    if (!overrides) return overrides.error();
    request.prompt_embeddings = std::move(overrides.value());
    const auto& rows = request.prompt_embeddings.rows;
    for (size_t i = 0; i < rows.size(); ++i) shown[i / size_t(encoder_->tokens_per_image())].positions.push_back(rows[i]);
    return shown;
}

}  // namespace mwb::app
