// What the server serves: a model folder opened on a backend with its tokenizer and chat template, the
// continuous-batching scheduler over it, LoRA adapters served under names of their own (as vLLM's
// --lora-modules: a request for "name" runs the base model with that adapter), and for a vision-language model
// its vision tower, which turns the images of chat messages into features.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/sampler.h"
#include "engine/runtime/scheduler.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/vision/image_processor.h"
#include "engine/vision/rgb_image.h"
#include "engine/vision/vision_encoder.h"

namespace mwb::serve {

struct ServedModelOptions {
    std::string model_dir;
    std::string name;                 // the id clients use; the folder's name when empty
    std::string tokenizer_dir;        // the model folder when empty
    std::string device = "cpu";       // cpu | cuda
    int threads = 0;                  // CPU threads; 0 = all cores
    SchedulerOptions scheduler;
    std::map<std::string, std::string> adapters;  // served name → PEFT adapter folder
    // Decodes an image sent as base64 (PNG, JPEG, …); the server itself is Qt-free, its owner supplies one.
    // Without it, requests with images are refused.
    std::function<Result<RgbImage>(std::string_view base64, const std::string& name)> decode_image;
};

class ServedModel {
public:
    static Result<std::unique_ptr<ServedModel>> open(const ServedModelOptions& options);
    ~ServedModel();

    const std::string& name() const { return name_; }
    std::vector<std::string> model_names() const;  // the base model, then its adapters
    // The adapter a model name asks for: null for the base model; false when the name is not served.
    bool resolve(const std::string& requested, const LowRankDeltas*& adapter) const;

    const tok::Tokenizer& tokenizer() const { return *tokenizer_; }
    const ModelConfig& config() const { return graph_->config; }
    const std::vector<int32_t>& stop_tokens() const { return stop_tokens_; }
    const SamplingParams& default_sampling() const { return default_sampling_; }
    std::string backend_name() const { return backend_->name(); }
    MemoryReport memory() const { return backend_->memory(); }
    Scheduler& scheduler() { return *scheduler_; }

    // Images of a chat request (per message, base64), as DeepSeek-VL takes them: first a placeholder per image
    // before its message's text, then, once the prompt is tokenized, its placeholders expanded into image tokens
    // that take the images' features. Fail for a model that cannot see, a bad image (named by its place), a
    // build that decodes no images, or a prompt whose placeholders do not match the images.
    Status mark_images(std::vector<tok::ChatMessage>& messages, const std::vector<std::vector<std::string>>& images) const;
    Result<EmbeddingOverrides> image_embeddings(std::vector<int32_t>& ids, const std::vector<std::vector<std::string>>& images);
    const Scheduler& scheduler() const { return *scheduler_; }

private:
    ServedModel() = default;
    std::string name_;
    std::shared_ptr<const ModelGraph> graph_;
    std::optional<tok::Tokenizer> tokenizer_;
    std::vector<int32_t> stop_tokens_;
    SamplingParams default_sampling_;
    std::map<std::string, LowRankDeltas> adapters_;
    std::unique_ptr<ImageEncoder> image_encoder_;  // vision-language models only
    ImageProcessorConfig image_processor_;
    std::function<Result<RgbImage>(std::string_view, const std::string&)> decode_image_;
    std::mutex image_mutex_;  // an encoder takes one image at a time
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<Scheduler> scheduler_;  // declared last: stopped before the backend it drives goes away
};

}  // namespace mwb::serve
