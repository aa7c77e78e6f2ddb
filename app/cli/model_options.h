// What the commands that run a model share: the model folder (first positional), `--device`, `--int8/--int4`,
// `--adapter`, `--ids` and the sampling options, and printing a reply as it streams.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "app/cli/cli_args.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/generation.h"
#include "engine/runtime/sampler.h"
#include "engine/tokenizer/streaming_detokenizer.h"

namespace mwb::cli {

Result<std::shared_ptr<const ModelGraph>> open_model(const CliArgs& args);
// The backend `--device` names: cpu (the default) or cuda.
Result<std::unique_ptr<Backend>> make_backend(std::shared_ptr<const ModelGraph> graph, const CliArgs& args, int threads = 0);
// The adapter `--adapter DIR` names, as the backend applies it unmerged; empty without the option.
Result<LowRankDeltas> adapter_deltas(const CliArgs& args, const ModelGraph& graph);
Result<std::vector<int32_t>> token_ids(const CliArgs& args, int64_t vocab);
// --temperature --top-p --top-k --min-p --repetition-penalty --seed (greedy by default).
Result<SamplingParams> sampling_from(const CliArgs& args);

// `--image FILE` run through the model's vision tower (DeepSeek-VL): the processor's pixel values and the
// features that take the place of the prompt's image tokens. Empty without the option.
struct ImageInput {
    std::vector<float> pixel_values;  // [3, size, size]
    std::vector<float> features;      // [tokens, width]
    int64_t size = 0, tokens = 0, width = 0;
    int32_t image_token_id = 0;
};
Result<std::optional<ImageInput>> image_input(const CliArgs& args, std::shared_ptr<const ModelGraph> graph);

// Generates, printing the text to stdout as it comes when `detokenizer` is given.
Result<GenerationResult> generate_printing(Backend& backend, const GenerationRequest& request, tok::StreamingDetokenizer* detokenizer);
// "finish=… prompt=… generated=… ttft=… prefill=… decode=…" on stderr.
void print_generation_summary(const GenerationRequest& request, const GenerationResult& result);

}  // namespace mwb::cli
