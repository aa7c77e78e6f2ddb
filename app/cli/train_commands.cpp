// mwb train: LoRA fine-tuning from the command line, with progress per step, JSONL metrics and checkpoints.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "engine/model/model_graph.h"
#include "engine/model/random_weights.h"
#include "engine/train/memory_plan.h"
#include "engine/train/merge.h"
#include "app/services/trainable_model.h"
#include "engine/train/trainer.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_lora_model.h"
#endif

namespace mwb::cli {

namespace {

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> items;
    std::stringstream stream(text);
    for (std::string item; std::getline(stream, item, ',');)
        if (!item.empty()) items.push_back(item);
    return items;
}

std::string duration_text(double seconds) {
    const int64_t s = int64_t(seconds + 0.5);
    char text[32];
    std::snprintf(text, sizeof(text), "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
    return text;
}

// The training options from the command line; errors name the flag.
Result<train::TrainOptions> train_options(const CliArgs& args) {
    train::TrainOptions o;
    auto number = [&](const char* name, double& target) -> Status {
        auto value = args.number_or(name, target);
        if (!value) return value.error();
        target = *value;
        return Status::success();
    };
    auto integer = [&](const char* name, int64_t& target) -> Status {
        auto value = args.integer_or(name, target);
        if (!value) return value.error();
        target = *value;
        return Status::success();
    };
    MWB_TRY(number("lr", o.optimizer.lr));
    MWB_TRY(number("beta1", o.optimizer.beta1));
    MWB_TRY(number("beta2", o.optimizer.beta2));
    MWB_TRY(number("eps", o.optimizer.eps));
    MWB_TRY(number("weight-decay", o.optimizer.weight_decay));
    MWB_TRY(integer("batch", o.batch));
    MWB_TRY(integer("grad-accum", o.gradient_accumulation));
    MWB_TRY(integer("steps", o.steps));
    MWB_TRY(number("epochs", o.epochs));
    MWB_TRY(integer("warmup", o.warmup_steps));
    MWB_TRY(number("clip", o.max_grad_norm));
    MWB_TRY(integer("checkpoint-every", o.checkpoint_every));
    int64_t seed = 0;
    MWB_TRY(integer("seed", seed));
    o.seed = uint64_t(seed);
    o.shuffle = !args.has("no-shuffle");
    auto schedule = train::parse_schedule(args.get_or("scheduler", "constant"));
    if (!schedule) return schedule.error();
    o.schedule = *schedule;
    if (!(o.optimizer.lr > 0)) return make_error("--lr must be positive");
    if (o.batch < 1 || o.gradient_accumulation < 1) return make_error("--batch and --grad-accum must be at least 1");
    if (args.has("steps") && args.has("epochs")) return make_error("give --steps or --epochs, not both");
    if (o.steps < 0 || !(o.epochs > 0)) return make_error("--steps and --epochs must be positive");
    if (o.warmup_steps < 0 || o.max_grad_norm < 0 || o.checkpoint_every < 0) return make_error("--warmup, --clip and --checkpoint-every cannot be negative");
    return o;
}

// The model `--device` trains on: the CPU trainer, or the CUDA one.
Result<std::unique_ptr<train::TrainableModel>> trainable_model(const CliArgs& args, std::shared_ptr<const ModelGraph> graph, int threads) {
    const std::string device = args.get_or("device", "cpu");
    if (device != "cpu" && device != "cuda") return make_error("--device must be cpu or cuda, got '" + device + "'");
    return app::make_trainable_model(std::move(graph), device == "cuda", threads);
}

// Bytes the trainer holds: on the GPU its weights and activations, on the CPU the process's peak resident set.
int64_t training_memory_bytes(const train::TrainableModel& model) {
#ifdef MWB_HAVE_CUDA
    if (const auto* gpu = dynamic_cast<const CudaLoraModel*>(&model)) return int64_t(gpu->weight_bytes() + gpu->activation_bytes());
#endif
    (void)model;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return int64_t(usage.ru_maxrss) * 1024;
}

}  // namespace

int run_train(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"no-shuffle", "rslora", "train-on-prompt", "skip-bad-lines", "gradient-checkpointing", "estimate"},
                               {"data", "out", "init-adapter", "targets", "rank", "alpha", "dropout", "lr", "beta1", "beta2", "eps",
                                "weight-decay", "batch", "grad-accum", "steps", "epochs", "scheduler", "warmup", "clip", "cutoff",
                                "val-split", "seed", "checkpoint-every", "resume", "device", "metrics", "tokenizer", "threads"});
    if (!args) return fail(args.error().message);
    if (args->positionals().size() != 1) return fail("give the model directory: mwb train MODEL_DIR --data FILE --out DIR");
    const std::string model_directory = args->positionals()[0];
    const bool estimate = args->has("estimate");
    if (!estimate && (!args->get("data") || !args->get("out"))) return fail("--data FILE and --out DIR are required");
    auto options = train_options(*args);
    if (!options) return fail(options.error().message);
    options->output_directory = args->get_or("out", "");
    options->base_model = model_directory;

    auto graph = load_model_graph(model_directory);
    if (!graph) return fail(graph.error().message);
    auto shared_graph = std::make_shared<const ModelGraph>(std::move(graph.value()));
    auto threads = args->integer_or("threads", 0);
    if (!threads) return fail(threads.error().message);

    // The adapter: continued from one, or new.
    Result<train::LoraAdapter> adapter = make_error("");
    if (auto init = args->get("init-adapter")) {
        if (args->has("targets") || args->has("rank") || args->has("alpha"))
            return fail("--init-adapter takes the targets, rank and alpha from that adapter: leave out --targets, --rank and --alpha");
        adapter = train::LoraAdapter::load(*init, *shared_graph);
    } else {
        train::LoraConfig config;
        config.target_modules = split_list(args->get_or("targets", shared_graph->config.mla ? "q_a_proj,q_b_proj,q_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj"
                                                                                           : "q_proj,k_proj,v_proj,o_proj"));
        auto rank = args->integer_or("rank", 8);
        auto alpha = args->number_or("alpha", 16);
        auto dropout = args->number_or("dropout", 0);
        if (!rank || !alpha || !dropout) return fail((!rank ? rank.error() : !alpha ? alpha.error() : dropout.error()).message);
        config.rank = *rank;
        config.alpha = *alpha;
        config.dropout = *dropout;
        config.rslora = args->has("rslora");
        adapter = train::LoraAdapter::create(*shared_graph, config, options->seed);
    }
    if (!adapter) return fail(adapter.error().message);
    if (estimate) {
        auto cutoff = args->integer_or("cutoff", train::DatasetOptions{}.cutoff);
        if (!cutoff || *cutoff < 2) return fail("--cutoff expects a number of tokens, at least 2");
        std::printf("memory plan for rows of %lld tokens (the trainer runs one row at a time, whatever --batch):\n%s",
                    (long long)*cutoff,
                    train::describe(train::plan_training_memory(*shared_graph, *adapter, *cutoff,
                                                                args->get_or("device", "cpu") == "cuda" ? train::TrainingDevice::Cuda
                                                                                                        : train::TrainingDevice::Cpu))
                        .c_str());
        return 0;
    }
    auto model = trainable_model(*args, shared_graph, int(*threads));
    if (!model) return fail(model.error().message);
    (*model)->set_gradient_checkpointing(args->has("gradient-checkpointing"));

    // The data, and the validation rows held out from it.
    train::DatasetOptions data_options;
    auto cutoff = args->integer_or("cutoff", data_options.cutoff);
    if (!cutoff) return fail(cutoff.error().message);
    data_options.cutoff = *cutoff;
    data_options.train_on_prompt = args->has("train-on-prompt");
    data_options.skip_bad_lines = args->has("skip-bad-lines");
    auto split = args->number_or("val-split", 0);
    if (!split) return fail(split.error().message);
    auto data = train::load_training_data(*args->get("data"), args->get_or("tokenizer", model_directory), data_options, *split, options->seed);
    if (!data) return fail(data.error().message);
    auto& dataset = data->train;
    train::Dataset& validation = data->validation;
    const int64_t held_out = int64_t(validation.rows.size());
    const train::DatasetStats& stats = dataset.stats;
    std::fprintf(stderr, "data: %lld rows, %lld tokens, %lld learnt, %lld truncated to %lld tokens, %lld bad lines skipped; %lld held out\n",
                 (long long)stats.rows, (long long)stats.tokens, (long long)stats.label_tokens, (long long)stats.truncated_rows,
                 (long long)data_options.cutoff, (long long)stats.skipped_lines, (long long)held_out);
    std::fprintf(stderr, "adapter: %zu modules, %lld trainable parameters\n", adapter->modules().size(), (long long)adapter->parameter_count());

    std::ofstream metrics;
    if (auto path = args->get("metrics")) {
        metrics.open(*path, std::ios::trunc);
        if (!metrics) return fail("cannot write " + *path);
    }
    train::Trainer trainer(**model, *adapter, *options, std::move(dataset), std::move(validation));
    if (auto resume = args->get("resume")) {
        if (Status status = trainer.resume(*resume); !status) return fail(status.error().message);
        std::fprintf(stderr, "resumed at step %lld of %lld\n", (long long)trainer.step(), (long long)trainer.total_steps());
    }
    double elapsed = 0;
    int64_t steps_run = 0;  // in this run, which may have resumed
    const Status status = trainer.run([&](const train::StepReport& r) {
        elapsed += r.seconds;
        const double per_step = elapsed / double(++steps_run);
        std::fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  grad norm %.3g  %.0f tok/s  ETA %s%s\n", (long long)r.step,
                     (long long)r.total_steps, r.loss, r.learning_rate, r.grad_norm, double(r.tokens) / std::max(r.seconds, 1e-9),
                     duration_text(per_step * double(r.total_steps - r.step)).c_str(),
                     r.validation_loss ? ("  val loss " + std::to_string(*r.validation_loss)).c_str() : "");
        if (metrics.is_open()) {
            nlohmann::json line = {{"step", r.step}, {"loss", r.loss}, {"lr", r.learning_rate}, {"grad_norm", r.grad_norm},
                                   {"tokens", r.tokens}, {"seconds", r.seconds}};
            if (r.validation_loss) line["val_loss"] = *r.validation_loss;
            metrics << line.dump() << "\n" << std::flush;
        }
        return true;
    });
    if (!status) return fail(status.error().message);
    std::fprintf(stderr, "adapter written to %s\n", options->output_directory.c_str());
    return 0;
}

int run_bench_train(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"random-weights", "gradient-checkpointing"},
                               {"shape", "layers", "rank", "seq", "batch", "steps", "targets", "threads", "seed", "device"});
    if (!args) return fail(args.error().message);
    if (!args->has("random-weights")) return fail("bench-train runs on random weights: pass --random-weights");
    auto layers = args->integer_or("layers", 2);
    auto rank = args->integer_or("rank", 16);
    auto seq = args->integer_or("seq", 1024);
    auto batch = args->integer_or("batch", 4);
    auto steps = args->integer_or("steps", 2);
    auto threads = args->integer_or("threads", 0);
    auto seed = args->integer_or("seed", 1);
    for (const Error* e : {layers ? nullptr : &layers.error(), rank ? nullptr : &rank.error(), seq ? nullptr : &seq.error(),
                           batch ? nullptr : &batch.error(), steps ? nullptr : &steps.error(), threads ? nullptr : &threads.error(),
                           seed ? nullptr : &seed.error()})
        if (e) return fail(e->message);
    if (*seq < 2 || *batch < 1 || *steps < 1) return fail("--seq must be at least 2, --batch and --steps at least 1");
    auto config = named_shape(args->get_or("shape", "v3-16b"), *layers);
    if (!config) return fail(config.error().message);

    const auto started = std::chrono::steady_clock::now();
    auto random = random_model(*config, uint64_t(*seed));
    if (!random) return fail(random.error().message);
    const std::shared_ptr<const ModelGraph> shared_graph = *random;
    train::LoraConfig lora;
    lora.target_modules = split_list(args->get_or("targets", "q_a_proj,q_b_proj,q_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj"));
    lora.rank = *rank;
    lora.alpha = 2.0 * double(*rank);
    auto adapter = train::LoraAdapter::create(*shared_graph, lora, uint64_t(*seed));
    if (!adapter) return fail(adapter.error().message);
    auto model = trainable_model(*args, shared_graph, int(*threads));
    if (!model) return fail(model.error().message);
    (*model)->set_gradient_checkpointing(args->has("gradient-checkpointing"));
    // Random token rows, every token learnt.
    train::Dataset data;
    std::mt19937_64 generator{uint64_t(*seed)};
    std::uniform_int_distribution<int32_t> token(0, int32_t(config->vocab_size - 1));
    for (int64_t r = 0; r < *batch; ++r) {
        train::TokenRow row;
        for (int64_t t = 0; t < *seq; ++t) row.ids.push_back(token(generator));
        row.labels.assign(row.ids.begin(), row.ids.end());
        data.rows.push_back(std::move(row));
    }
    const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    train::TrainOptions options;
    options.batch = *batch;
    options.steps = *steps;
    options.shuffle = false;
    train::Trainer trainer(**model, *adapter, options, std::move(data));
    std::vector<double> step_seconds, losses;
    const Status status = trainer.run([&](const train::StepReport& r) {
        step_seconds.push_back(r.seconds);
        losses.push_back(r.loss);
        return true;
    });
    if (!status) return fail(status.error().message);
    std::vector<double> sorted = step_seconds;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const nlohmann::json report = {{"backend", args->get_or("device", "cpu")},
                                   {"shape", args->get_or("shape", "v3-16b")},
                                   {"layers", *layers},
                                   {"rank", *rank},
                                   {"targets", lora.target_modules},
                                   {"adapter_parameters", adapter->parameter_count()},
                                   {"seq", *seq},
                                   {"batch", *batch},
                                   {"gradient_checkpointing", args->has("gradient-checkpointing")},
                                   {"setup_seconds", setup_s},
                                   {"step_seconds", step_seconds},
                                   {"median_step_seconds", median},
                                   {"tokens_per_s", double(*seq * *batch) / median},
                                   {"peak_memory_bytes", training_memory_bytes(**model)},
                                   {"losses", losses}};
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
}

int run_merge(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {}, {"adapter", "out", "dtype", "shard-size"});
    if (!args) return fail(args.error().message);
    if (args->positionals().size() != 1 || !args->get("adapter") || !args->get("out"))
        return fail("usage: mwb merge MODEL_DIR --adapter DIR --out DIR [--dtype float32|bfloat16|float16] [--shard-size GB]");
    train::MergeOptions options;
    if (auto dtype = args->get("dtype")) {
        if (*dtype == "float32") options.dtype = DType::F32;
        else if (*dtype == "bfloat16") options.dtype = DType::BF16;
        else if (*dtype == "float16") options.dtype = DType::F16;
        else return fail("--dtype must be float32, bfloat16 or float16, got '" + *dtype + "'");
    }
    auto shard = args->number_or("shard-size", 5);
    if (!shard || !(*shard > 0)) return fail("--shard-size is the largest shard in GB, a positive number");
    options.max_shard_bytes = int64_t(*shard * double(int64_t(1) << 30));
    auto graph = load_model_graph(args->positionals()[0]);
    if (!graph) return fail(graph.error().message);
    auto adapter = train::LoraAdapter::load(*args->get("adapter"), *graph);
    if (!adapter) return fail(adapter.error().message);
    if (Status status = train::merge_adapter(args->positionals()[0], *graph, *adapter, *args->get("out"), options); !status)
        return fail(status.error().message);
    std::fprintf(stderr, "merged %zu adapted layers into %s\n", adapter->modules().size(), args->get("out")->c_str());
    return 0;
}

}  // namespace mwb::cli
