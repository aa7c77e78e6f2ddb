// The images of a conversation as a loaded DeepSeek-VL model sees them: each image attached to a message
// becomes a placeholder before the message's text (as DeepSeek-VL's conversations write "<image_placeholder>"),
// and once the prompt is tokenized, the image's tokens whose embeddings are the vision tower's features.
#pragma once

#include <QList>
#include <QStringList>
#include <memory>

#include "app/services/chat_types.h"
#include "app/services/inspector_feed.h"
#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/generation.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/vision/image_processor.h"
#include "engine/vision/vision_encoder.h"

namespace mwb::app {

class VisionInput {
public:
    // The vision tower of a deepseek_vl graph (on the GPU with `cuda`, else on `threads` CPU threads) and the image
    // processor settings of its folder.
    static Result<std::unique_ptr<VisionInput>> load(std::shared_ptr<const ModelGraph> graph, const QString& directory, bool cuda,
                                                     int threads);

    int64_t tokens_per_image() const { return encoder_->tokens_per_image(); }
    // `messages` with one placeholder per attached image before each message's text.
    Result<QList<ChatMessage>> with_placeholders(const QList<ChatMessage>& messages, const tok::Tokenizer& tokenizer) const;
    // Expands the placeholders of `request.prompt` into image tokens and gives them the features of the images,
    // which are the last images of the conversation (those of messages that fitted the context), in order. The
    // value says which image took which positions, for the Inspector.
    Result<std::vector<InspectedImage>> attach(const QStringList& conversation_images, GenerationRequest& request);

private:
    VisionInput(std::unique_ptr<ImageEncoder> encoder, ImageProcessorConfig processor)
        : encoder_(std::move(encoder)), processor_(processor) {}

    std::unique_ptr<ImageEncoder> encoder_;
    ImageProcessorConfig processor_;
};

// Every image attached to `messages`, in order.
QStringList conversation_images(const QList<ChatMessage>& messages);

}  // namespace mwb::app
