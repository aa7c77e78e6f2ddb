// mwb info / generate / logits / bench.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "app/cli/model_options.h"
#include "engine/model/model_graph.h"
#include "engine/model/model_summary.h"
#include "engine/model/random_weights.h"
#include "engine/observe/forward_capture.h"
#include "engine/observe/routing_trace.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/runtime/generation.h"
#include "engine/tokenizer/streaming_detokenizer.h"
#include "engine/train/lora_adapter.h"
#include "engine/vision/image_prompt.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_backend.h"
#endif

namespace mwb::cli {


int run_info(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"json"}, {});
    if (!args) return fail(args.error().message);
    auto graph = open_model(*args);
    if (!graph) return fail(graph.error().message);
    const ModelSummary summary = summarize(**graph);
    if (args->has("json")) std::printf("%s\n", summary.to_json().c_str());
    else std::fputs(summary.to_text().c_str(), stdout);
    return 0;
}

int run_logits(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"attention", "int8", "int4"}, {"ids", "out", "device", "adapter", "image"});
    if (!args) return fail(args.error().message);
    auto out = args->get("out");
    if (!out) return fail("give the output file with --out FILE.safetensors");
    auto graph = open_model(*args);
    if (!graph) return fail(graph.error().message);
    auto tokens = token_ids(*args, (*graph)->config.vocab_size);
    if (!tokens) return fail(tokens.error().message);
    auto image = image_input(*args, *graph);
    if (!image) return fail(image.error().message);
    if (*image) {
        auto expanded = expand_image_placeholders(*tokens, (*image)->image_token_id, (*image)->tokens);
        if (!expanded) return fail(expanded.error().message);
        *tokens = std::move(expanded.value());
    }
    auto made = make_backend(*graph, *args);
    if (!made) return fail(made.error().message);
    auto& backend = made.value();
    const int64_t count = int64_t(tokens->size());
    if (auto status = backend->reserve_cache(1, count); !status) return fail(status.error().message);

    std::set<int64_t> attention_layers;
    if (args->has("attention"))
        for (int64_t l = 0; l < (*graph)->config.num_layers; ++l) attention_layers.insert(l);
    ForwardCapture capture(count, attention_layers);
    auto adapter = adapter_deltas(*args, **graph);
    if (!adapter) return fail(adapter.error().message);
    ForwardBatch batch{*tokens, {{0, 0, count}}, true, adapter->empty() ? nullptr : &*adapter};
    if (*image) {
        auto overrides = image_embedding_overrides(*tokens, (*image)->image_token_id, (*image)->features, (*image)->width);
        if (!overrides) return fail(overrides.error().message);
        batch.embedding_overrides = std::move(overrides.value());
    }
    auto logits = backend->forward(batch, &capture);
    if (!logits) return fail(logits.error().message);
    auto tensors = capture.tensors();
    if (*image) {
        tensors.push_back(tensor_f32("pixel_values", {3, (*image)->size, (*image)->size}, (*image)->pixel_values));
        tensors.push_back(tensor_f32("image_features", {(*image)->tokens, (*image)->width}, (*image)->features));
    }
    tensors.push_back(tensor_f32("logits", {count, (*graph)->config.vocab_size}, *logits));
    std::vector<int64_t> ids(tokens->begin(), tokens->end());
    tensors.push_back(tensor_i64("input_ids", {count}, ids));
    if (auto status = write_safetensors(*out, tensors); !status) return fail(status.error().message);
    std::printf("wrote %zu tensors to %s\n", tensors.size(), out->c_str());
    return 0;
}

namespace {

// `--image`: the prompt's image placeholder becomes the image's tokens, and its features their embeddings.
Status add_image(const CliArgs& args, std::shared_ptr<const ModelGraph> graph, GenerationRequest& request) {
    auto image = image_input(args, graph);
    if (!image) return image.error();
    if (!*image) return Status::success();
    const int32_t image_token = (*image)->image_token_id;
    if (std::find(request.prompt.begin(), request.prompt.end(), image_token) == request.prompt.end())
        return make_error(args.has("ids") ? "--ids has no image token (" + std::to_string(image_token) + ") for the image to take"
                                          : "the prompt has no image placeholder: the tokenizer does not know the image token " + std::to_string(image_token));
    auto expanded = expand_image_placeholders(request.prompt, image_token, (*image)->tokens);
    if (!expanded) return expanded.error();
    request.prompt = std::move(expanded.value());
    auto overrides = image_embedding_overrides(request.prompt, image_token, (*image)->features, (*image)->width);
    if (!overrides) return overrides.error();
    request.prompt_embeddings = std::move(overrides.value());
    return Status::success();
}

}  // namespace

int run_generate(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"chat", "int8", "int4"},
                               {"ids", "prompt", "system", "tokenizer", "max-new", "temperature", "top-p", "top-k", "min-p",
                                "repetition-penalty", "seed", "device", "adapter", "image"});
    if (!args) return fail(args.error().message);
    auto graph = open_model(*args);
    if (!graph) return fail(graph.error().message);
    auto sampling = sampling_from(*args);
    if (!sampling) return fail(sampling.error().message);
    auto max_new = args->integer_or("max-new", 32);
    if (!max_new || *max_new < 1) return fail("--max-new expects a positive integer");

    GenerationRequest request;
    request.sampling = *sampling;
    request.max_new_tokens = *max_new;
    for (int64_t id : (*graph)->config.eos_token_ids) request.stop_tokens.push_back(int32_t(id));

    // Text in, streamed text out when a prompt is given; ids in, ids out otherwise.
    std::optional<tok::Tokenizer> tokenizer;
    std::optional<tok::StreamingDetokenizer> detokenizer;
    if (args->has("prompt") && args->has("ids")) return fail("--prompt and --ids exclude each other: give the prompt as text or as ids");
    if (auto given = args->get("prompt")) {
        auto loaded = tok::Tokenizer::load(args->get_or("tokenizer", args->positionals()[0]));
        if (!loaded && !args->has("tokenizer"))
            return fail(loaded.error().message + "; a model folder without its tokenizer takes one with --tokenizer DIR");
        if (!loaded) return fail(loaded.error().message);
        tokenizer.emplace(std::move(loaded.value()));
        // A question about an image starts with the image's placeholder (DeepSeek-VL's "<image_placeholder>")
        // unless it places it itself.
        std::string prompt = *given;
        if (const auto& vision = (*graph)->config.vision_language; vision && args->has("image"))
            if (auto placeholder = tokenizer->id_to_token(int32_t(vision->image_token_id)); placeholder && prompt.find(*placeholder) == std::string::npos)
                prompt = *placeholder + prompt;
        Result<std::vector<int32_t>> ids = std::vector<int32_t>{};
        if (args->has("chat")) {
            std::vector<tok::ChatMessage> messages;
            if (auto system = args->get("system")) messages.push_back({"system", *system, {}, {}, tok::TemplateJson::object()});
            messages.push_back({"user", prompt, {}, {}, tok::TemplateJson::object()});
            ids = chat_prompt_ids(*tokenizer, messages);
        } else {
            ids = tokenizer->encode(prompt, true);
        }
        if (!ids) return fail(ids.error().message);
        request.prompt = *ids;
        request.stop_tokens = stop_token_ids(*tokenizer, (*graph)->config);
        detokenizer.emplace(*tokenizer, /*skip_special_tokens=*/true);
    } else {
        auto tokens = token_ids(*args, (*graph)->config.vocab_size);
        if (!tokens) return fail(tokens.error().message);
        request.prompt = *tokens;
    }

    if (auto status = add_image(*args, *graph, request); !status) return fail(status.error().message);
    auto made = make_backend(*graph, *args);
    if (!made) return fail(made.error().message);
    auto& backend = made.value();
    if (auto status = backend->reserve_cache(1, int64_t(request.prompt.size()) + *max_new); !status) return fail(status.error().message);
    auto adapter = adapter_deltas(*args, **graph);
    if (!adapter) return fail(adapter.error().message);
    if (!adapter->empty()) request.adapter = &*adapter;
    auto result = generate_printing(*backend, request, detokenizer ? &*detokenizer : nullptr);
    if (!result) return fail(result.error().message);
    if (!detokenizer) {
        std::string line;
        for (size_t i = 0; i < result->tokens.size(); ++i) line += (i ? "," : "") + std::to_string(result->tokens[i]);
        std::printf("%s\n", line.c_str());
    }
    print_generation_summary(request, *result);
    return 0;
}

int run_bench(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"random-weights", "trace-routing", "int8", "int4"},
                               {"shape", "layers", "prompt", "gen", "seed", "batch", "threads", "bandwidth", "device"});
    if (!args) return fail(args.error().message);
    if (!args->has("random-weights")) return fail("bench runs on random weights: pass --random-weights");
    auto layers = args->integer_or("layers", 2);
    auto prompt = args->integer_or("prompt", 512);
    auto gen = args->integer_or("gen", 128);
    auto seed = args->integer_or("seed", 1);
    auto batch = args->integer_or("batch", 1);
    auto threads = args->integer_or("threads", 0);
    auto bandwidth = args->number_or("bandwidth", 0.0);
    for (const Error* e : {layers ? nullptr : &layers.error(), prompt ? nullptr : &prompt.error(), gen ? nullptr : &gen.error(),
                           seed ? nullptr : &seed.error(), threads ? nullptr : &threads.error(), bandwidth ? nullptr : &bandwidth.error(),
                           batch ? nullptr : &batch.error()})
        if (e) return fail(e->message);
    if (*prompt < 1 || *gen < 1 || *batch < 1) return fail("--prompt, --gen and --batch must be at least 1");
    auto config = named_shape(args->get_or("shape", "v3-16b"), *layers);
    if (!config) return fail(config.error().message);

    Stopwatch setup;
    auto model = random_model(*config, uint64_t(*seed));
    if (!model) return fail(model.error().message);
    const std::shared_ptr<const ModelGraph> shared_graph = *model;
    const ModelSummary summary = summarize(*shared_graph);
    const double setup_s = setup.seconds();

    auto made = make_backend(shared_graph, *args, int(*threads));
    if (!made) return fail(made.error().message);
    auto& backend = made.value();
    nlohmann::json report = {{"backend", backend->name()}, {"shape", args->get_or("shape", "v3-16b")}, {"layers", *layers},
                             {"batch", *batch}, {"parameters", summary.total_parameters},
                             {"active_parameters_per_token", summary.active_parameters}, {"weights_dtype", summary.weights_dtype},
                             {"weight_bytes_per_decoded_token", summary.weight_bytes_per_decoded_token},
                             {"routing_trace", args->has("trace-routing")}, {"setup_s", setup_s}};
    double decode_tokens_per_s = 0;
    if (*batch > 1) {
#ifdef MWB_HAVE_CUDA
        auto* cuda = dynamic_cast<CudaBackend*>(backend.get());
        if (!cuda) return fail("--batch above 1 is measured on the CUDA backend only (--device cuda)");
        if (auto status = cuda->reserve_cache(*batch, *prompt + *gen); !status) return fail(status.error().message);
        auto measured = benchmark_batched_decode(*cuda, *batch, *prompt, *gen, uint64_t(*seed));
        if (!measured) return fail(measured.error().message);
        decode_tokens_per_s = measured->decode_tokens_per_s;
        report["prompt_tokens"] = measured->prompt_tokens;
        report["generated_tokens"] = measured->generated_tokens;
        report["prefill_tokens_per_s"] = measured->prefill_tokens_per_s;
        report["decode_tokens_per_s"] = measured->decode_tokens_per_s;
        report["peak_device_bytes"] = measured->peak_device_bytes;
#else
        return fail("--batch above 1 is measured on the CUDA backend only, and this build has none");
#endif
    } else {
        if (auto status = backend->reserve_cache(1, *prompt + *gen); !status) return fail(status.error().message);
        std::mt19937_64 random(static_cast<uint64_t>(*seed));
        GenerationRequest request;
        for (int64_t i = 0; i < *prompt; ++i) request.prompt.push_back(int32_t(random() % uint64_t(config->vocab_size)));
        request.sampling.temperature = 0;
        request.max_new_tokens = *gen;
        RoutingTrace trace;
        ForwardObserver* observer = args->has("trace-routing") ? &trace : nullptr;
        Result<GenerationResult> result = make_error("no generation ran");
#ifdef MWB_HAVE_CUDA
        if (auto* cuda = dynamic_cast<CudaBackend*>(backend.get())) {
            // A short warm-up keeps CUDA-graph capture and cuBLAS initialisation out of the timings.
            GenerationRequest warm_up = request;
            warm_up.max_new_tokens = 4;
            if (auto warmed = generate_on_gpu(*cuda, warm_up); !warmed) return fail(warmed.error().message);
            result = generate_on_gpu(*cuda, request, {}, observer);
            report["device_bytes_reserved"] = cuda->device_bytes_reserved();
        }
#endif
        if (backend->name() == "cpu") result = generate(*backend, request, {}, observer);
        if (!result) return fail(result.error().message);
        decode_tokens_per_s = result->timings.decode_tokens_per_s();
        report["prompt_tokens"] = result->timings.prompt_tokens;
        report["generated_tokens"] = result->timings.generated_tokens;
        report["prefill_tokens_per_s"] = result->timings.prefill_tokens_per_s();
        report["decode_tokens_per_s"] = decode_tokens_per_s;
        report["time_to_first_token_s"] = result->timings.time_to_first_token_s;
    }
    const MemoryReport memory = backend->memory();
    report["memory_bytes"] = {{"weights", memory.weight_bytes}, {"kv_cache", memory.kv_cache_bytes}, {"workspace", memory.workspace_bytes}};
    // The bound of decode: every weight the step uses (the distinct experts of the batch's tokens) and each
    // sequence's cache at its average length read once per step at the given bandwidth.
    double weight_scale = 1.0;
#ifdef MWB_HAVE_CUDA
    if (const auto* cuda = dynamic_cast<const CudaBackend*>(backend.get()); cuda && (args->has("int8") || args->has("int4"))) {
        report["weight_quantisation"] = args->has("int8") ? "int8" : "int4";
        report["quantisation_worst_relative_error"] = cuda->worst_quantisation_error().relative_error;
        report["quantisation_worst_matrix"] = cuda->worst_quantisation_error().matrix;
        const double embedding = double(config->vocab_size) * double(config->hidden_size) * 2;  // kept bf16, a row read per token
        weight_scale = (double(memory.weight_bytes) - embedding) /
                       (double(cuda::device_weight_bytes(*shared_graph, cuda::WeightQuantisation::None)) - embedding);
    }
#endif
    const double context = double(*prompt) + double(*gen) / 2.0;
    const double step_bytes = decode_step_bytes(summary, *batch, context, weight_scale);
    report["decode_bytes_per_step"] = step_bytes;
    report["expected_distinct_experts_per_moe_layer"] = expected_distinct_experts(summary.routed_experts, summary.experts_per_token, *batch);
    if (*bandwidth > 0) {
        const double bound = *bandwidth * 1e9 / step_bytes * double(*batch);
        report["bandwidth_GBps"] = *bandwidth;
        report["decode_bound_tokens_per_s"] = bound;
        report["fraction_of_bound"] = decode_tokens_per_s / bound;
    }
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
}

}  // namespace mwb::cli
