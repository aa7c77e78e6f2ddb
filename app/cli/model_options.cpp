#include "app/cli/model_options.h"

#include <cstdio>

#include "engine/train/lora_adapter.h"
#include "engine/vision/image_processor.h"
#include "engine/vision/vision_encoder.h"
#ifdef MWB_HAVE_IMAGE_FILES
#include <QString>

#include "app/vision/image_file.h"
#endif
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_backend.h"
#include "kernels/cuda_vision_encoder.h"
#endif

namespace mwb::cli {

#ifdef MWB_HAVE_IMAGE_FILES
namespace {

Result<std::optional<ImageInput>> encode_image(ImageEncoder& encoder, std::vector<float> pixel_values) {
    ImageInput input;
    auto features = encoder.encode(pixel_values);
    if (!features) return features.error();
    input.pixel_values = std::move(pixel_values);
    input.features = std::move(features.value());
    input.size = encoder.image_size();
    input.tokens = encoder.tokens_per_image();
    input.width = encoder.feature_width();
    input.image_token_id = encoder.image_token_id();
    return std::optional<ImageInput>(std::move(input));
}

}  // namespace
#endif

Result<std::shared_ptr<const ModelGraph>> open_model(const CliArgs& args) {
    if (args.positionals().empty()) return make_error("give the model directory");
    auto graph = load_model_graph(args.positionals()[0]);
    if (!graph) return graph.error();
    return std::make_shared<const ModelGraph>(std::move(graph.value()));
}

// The backend `--device` names: cpu (the default) or cuda.
Result<std::unique_ptr<Backend>> make_backend(std::shared_ptr<const ModelGraph> graph, const CliArgs& args, int threads) {
    const std::string device = args.get_or("device", "cpu");
    if (args.has("int8") && args.has("int4")) return make_error("--int8 and --int4 exclude each other: choose one");
    if (device == "cpu") {
        if (args.has("int8") || args.has("int4")) return make_error("--int8 and --int4 quantise weights for --device cuda only");
        return make_cpu_backend(std::move(graph), threads);
    }
    if (device != "cuda") return make_error("--device must be cpu or cuda, got '" + device + "'");
#ifdef MWB_HAVE_CUDA
    CudaOptions options;
    if (args.has("int8")) options.quantisation = cuda::WeightQuantisation::Int8;
    if (args.has("int4")) options.quantisation = cuda::WeightQuantisation::Int4;
    auto backend = make_cuda_backend(std::move(graph), options);
    if (!backend) return backend.error();
    return std::unique_ptr<Backend>(std::move(backend.value()));
#else
    return make_error("this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
}

// The adapter `--adapter DIR` names, as the backend applies it unmerged; empty without the option.
Result<LowRankDeltas> adapter_deltas(const CliArgs& args, const ModelGraph& graph) {
    auto directory = args.get("adapter");
    if (!directory) return LowRankDeltas{};
    auto adapter = train::LoraAdapter::load(*directory, graph);
    if (!adapter) return adapter.error();
    return adapter->deltas(graph);
}

Result<std::vector<int32_t>> token_ids(const CliArgs& args, int64_t vocab) {
    auto ids = args.integer_list("ids");
    if (!ids) return ids.error();
    if (ids->empty()) return make_error("give the prompt as --ids 1,2,3");
    std::vector<int32_t> tokens;
    for (long long id : *ids) {
        if (id < 0 || id >= vocab) return make_error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab));
        tokens.push_back(int32_t(id));
    }
    return tokens;
}

Result<SamplingParams> sampling_from(const CliArgs& args) {
    SamplingParams p;
    auto temperature = args.number_or("temperature", 0.0);
    auto top_p = args.number_or("top-p", 1.0);
    auto top_k = args.integer_or("top-k", 0);
    auto min_p = args.number_or("min-p", 0.0);
    auto penalty = args.number_or("repetition-penalty", 1.0);
    auto seed = args.integer_or("seed", 0);
    for (const Error* e : {temperature ? nullptr : &temperature.error(), top_p ? nullptr : &top_p.error(),
                           top_k ? nullptr : &top_k.error(), min_p ? nullptr : &min_p.error(),
                           penalty ? nullptr : &penalty.error(), seed ? nullptr : &seed.error()})
        if (e) return *e;
    p.temperature = *temperature;
    p.top_p = *top_p;
    p.top_k = *top_k;
    p.min_p = *min_p;
    p.repetition_penalty = *penalty;
    p.seed = uint64_t(*seed);
    if (p.temperature < 0 || p.top_p <= 0 || p.top_p > 1 || p.top_k < 0 || p.min_p < 0 || p.min_p > 1 || p.repetition_penalty <= 0)
        return make_error("sampling parameters out of range (temperature ≥ 0, 0 < top-p ≤ 1, top-k ≥ 0, 0 ≤ min-p ≤ 1, repetition-penalty > 0)");
    return p;
}

Result<GenerationResult> generate_printing(Backend& backend, const GenerationRequest& request, tok::StreamingDetokenizer* detokenizer) {
    auto stream = [&](int32_t token) {
        if (detokenizer) {
            const std::string piece = detokenizer->push(token);
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
        }
        return true;
    };
    auto result = generate(backend, request, stream);
    if (!result) return result.error();
    if (detokenizer) {
        const std::string rest = detokenizer->finish();
        std::printf("%s\n", rest.c_str());
    }
    return result;
}

void print_generation_summary(const GenerationRequest& request, const GenerationResult& result) {
    std::fprintf(stderr, "finish=%s prompt=%zu generated=%zu ttft=%.3fs prefill=%.1f tok/s decode=%.1f tok/s\n",
                 finish_reason_name(result.finish).c_str(), request.prompt.size(), result.tokens.size(),
                 result.timings.time_to_first_token_s, result.timings.prefill_tokens_per_s(), result.timings.decode_tokens_per_s());
}

Result<std::optional<ImageInput>> image_input(const CliArgs& args, std::shared_ptr<const ModelGraph> graph) {
    auto file = args.get("image");
    if (!file) return std::optional<ImageInput>();
    if (!graph->config.vision_language)
        return make_error("this model (" + architecture_name(graph->config.architecture) +
                          ") cannot see images: --image needs a vision-language model such as DeepSeek-VL");
#ifdef MWB_HAVE_IMAGE_FILES
    auto image = app::read_image_file(QString::fromStdString(*file));
    if (!image) return image.error();
    auto processor = load_image_processor_config(args.positionals()[0]);
    if (!processor) return processor.error();
    auto pixels = preprocess_image(*image, *processor);
    if (!pixels) return pixels.error();
    if (args.get_or("device", "cpu") == "cuda") {
#ifdef MWB_HAVE_CUDA
        auto encoder = CudaVisionEncoder::load(graph);
        if (!encoder) return encoder.error();
        return encode_image(**encoder, std::move(pixels.value()));
#else
        return make_error("this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
    }
    auto encoder = VisionEncoder::load(graph);
    if (!encoder) return encoder.error();
    return encode_image(*encoder, std::move(pixels.value()));
#else
    return make_error("this build of mwb reads no image files (it was configured with MWB_DOCUMENTS=OFF, without Qt's image decoders)");
#endif
}

}  // namespace mwb::cli
