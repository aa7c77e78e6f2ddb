#include "app/server/served_model.h"

#include <algorithm>

#include "engine/core/text_file.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/runtime/generation_config.h"
#include "engine/train/lora_adapter.h"
#include "engine/vision/image_prompt.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_backend.h"
#include "kernels/cuda_vision_encoder.h"
#endif

namespace mwb::serve {

namespace {

// Sampling the model's authors chose (generation_config.json), where the request says nothing, as vLLM applies
// it; without the file, or with one out of range, OpenAI's defaults (temperature 1, top_p 1).
SamplingParams model_sampling_defaults(const std::string& model_dir) {
    auto config = load_generation_config(model_dir);
    if (!config || !config.value()) return {};
    auto sampling = sampling_from(**config, {});
    return sampling ? *sampling : SamplingParams{};
}

Result<std::unique_ptr<Backend>> open_backend(std::shared_ptr<const ModelGraph> graph, const ServedModelOptions& options) {
    if (options.device == "cpu") return make_cpu_backend(std::move(graph), options.threads);
    if (options.device != "cuda") return make_error("the device must be cpu or cuda, got '" + options.device + "'");
#ifdef MWB_HAVE_CUDA
    CudaOptions cuda;
    cuda.cached_adapters = std::max(cuda.cached_adapters, options.adapters.size());  // every served adapter stays on the device
    auto backend = make_cuda_backend(std::move(graph), cuda);
    if (!backend) return backend.error();
    return std::unique_ptr<Backend>(std::move(backend.value()));
#else
    return make_error("this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
}

// The vision tower of a vision-language model, on the served model's device.
Result<std::unique_ptr<ImageEncoder>> open_image_encoder(std::shared_ptr<const ModelGraph> graph, const ServedModelOptions& options) {
#ifdef MWB_HAVE_CUDA
    if (options.device == "cuda") {
        auto encoder = CudaVisionEncoder::load(std::move(graph));
        if (!encoder) return encoder.error();
        return std::unique_ptr<ImageEncoder>(std::move(encoder.value()));
    }
#endif
    auto encoder = VisionEncoder::load(std::move(graph), options.threads);
    if (!encoder) return encoder.error();
    return std::unique_ptr<ImageEncoder>(std::make_unique<VisionEncoder>(std::move(encoder.value())));
}

}  // namespace

ServedModel::~ServedModel() = default;

Result<std::unique_ptr<ServedModel>> ServedModel::open(const ServedModelOptions& options) {
    std::unique_ptr<ServedModel> model(new ServedModel());
    auto graph = load_model_graph(options.model_dir);
    if (!graph) return graph.error();
    model->graph_ = std::make_shared<const ModelGraph>(std::move(graph.value()));
    const std::string tokenizer_dir = options.tokenizer_dir.empty() ? options.model_dir : options.tokenizer_dir;
    auto tokenizer = tok::Tokenizer::load(tokenizer_dir);
    if (!tokenizer)
        return make_error(tokenizer.error().message + (options.tokenizer_dir.empty() ? "; a model folder without its tokenizer takes one with --tokenizer DIR" : ""));
    model->tokenizer_.emplace(std::move(tokenizer.value()));
    model->stop_tokens_ = stop_token_ids(*model->tokenizer_, model->graph_->config);
    model->default_sampling_ = model_sampling_defaults(options.model_dir);
    model->name_ = options.name;
    if (model->name_.empty()) model->name_ = folder_name(options.model_dir);
    for (const auto& [name, directory] : options.adapters) {
        if (name == model->name_) return make_error("the adapter name '" + name + "' is the base model's name; choose another");
        auto adapter = train::LoraAdapter::load(directory, *model->graph_);
        if (!adapter) return make_error("adapter '" + name + "': " + adapter.error().message);
        model->adapters_.emplace(name, adapter->deltas(*model->graph_));
    }
    if (model->graph_->config.vision_language) {
        auto encoder = open_image_encoder(model->graph_, options);
        if (!encoder) return encoder.error();
        auto processor = load_image_processor_config(options.model_dir);
        if (!processor) return processor.error();
        model->image_encoder_ = std::move(encoder.value());
        model->image_processor_ = *processor;
        model->decode_image_ = options.decode_image;
    }
    auto backend = open_backend(model->graph_, options);
    if (!backend) return backend.error();
    model->backend_ = std::move(backend.value());
    auto scheduler = Scheduler::start(*model->backend_, model->graph_->config, options.scheduler);
    if (!scheduler) return scheduler.error();
    model->scheduler_ = std::move(scheduler.value());
    return model;
}

std::vector<std::string> ServedModel::model_names() const {
    std::vector<std::string> names = {name_};
    for (const auto& [name, deltas] : adapters_) names.push_back(name);
    return names;
}

bool ServedModel::resolve(const std::string& requested, const LowRankDeltas*& adapter) const {
    adapter = nullptr;
    if (requested.empty() || requested == name_) return true;
    auto it = adapters_.find(requested);
    if (it == adapters_.end()) return false;
    adapter = &it->second;
    return true;
}

Status ServedModel::mark_images(std::vector<tok::ChatMessage>& messages, const std::vector<std::vector<std::string>>& images) const {
    if (!image_encoder_)
        return make_error("the model '" + name_ + "' (" + architecture_name(graph_->config.architecture) +
                          ") cannot see images; serve a vision-language model such as DeepSeek-VL");
    if (!decode_image_) return make_error("this build of mwb decodes no images (it was configured without Qt's image decoders)");
    auto placeholder = tokenizer_->id_to_token(image_encoder_->image_token_id());
    if (!placeholder)
        return make_error("the tokenizer has no token " + std::to_string(image_encoder_->image_token_id()) + " for images (the model's image_token_id)");
    for (size_t m = 0; m < messages.size() && m < images.size(); ++m) {
        std::string marked;
        for (size_t i = 0; i < images[m].size(); ++i) marked += *placeholder;
        messages[m].content = marked + messages[m].content.value_or("");
    }
    return Status::success();
}

Result<EmbeddingOverrides> ServedModel::image_embeddings(std::vector<int32_t>& ids, const std::vector<std::vector<std::string>>& images) {
    const int32_t image_token = image_encoder_->image_token_id();
    auto expanded = expand_image_placeholders(ids, image_token, image_encoder_->tokens_per_image());
    if (!expanded) return expanded.error();
    ids = std::move(expanded.value());
    std::vector<float> features;
    std::lock_guard lock(image_mutex_);
    for (size_t m = 0; m < images.size(); ++m)
        for (size_t i = 0; i < images[m].size(); ++i) {
            const std::string name = "the image " + std::to_string(i + 1) + " of messages[" + std::to_string(m) + "]";
            auto image = decode_image_(images[m][i], name);
            if (!image) return image.error();
            auto pixels = preprocess_image(*image, image_processor_);
            if (!pixels) return make_error(name + ": " + pixels.error().message);
            auto encoded = image_encoder_->encode(*pixels);
            if (!encoded) return encoded.error();
            features.insert(features.end(), encoded->begin(), encoded->end());
        }
    return image_embedding_overrides(ids, image_token, features, image_encoder_->feature_width());
}

}  // namespace mwb::serve
