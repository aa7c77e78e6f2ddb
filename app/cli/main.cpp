// mwb: the command-line companion of MoE Workbench.
#include <cstdio>
#include <cstring>

#include "app/cli/commands.h"

namespace {

struct Command {
    const char* name;
    int (*run)(int, char**);
    const char* usage;
};

const Command kCommands[] = {
    {"info", mwb::cli::run_info, "info DIR [--json]                architecture, parameters, memory of a model"},
    {"generate", mwb::cli::run_generate,
     "generate DIR (--ids 1,2,3 | --prompt TEXT [--chat --system TEXT --tokenizer DIR]) [--max-new N --temperature T "
     "--top-p P --top-k K --min-p P --repetition-penalty R --seed S --adapter DIR --image FILE --device cpu|cuda --int8|--int4]"},
    {"logits", mwb::cli::run_logits,
     "logits DIR --ids 1,2,3 --out FILE.safetensors [--attention --adapter DIR --image FILE --device cpu|cuda --int8|--int4]"},
    {"bench", mwb::cli::run_bench,
     "bench --shape v3-16b --layers N --random-weights [--prompt 512 --gen 128 --batch B --bandwidth GBps --seed S "
     "--threads N --device cpu|cuda --int8|--int4 --trace-routing]"},
    {"serve", mwb::cli::run_serve,
     "serve [MODEL_DIR] [--host 127.0.0.1 --port 8080 --api-key KEY --max-batch 8 --max-queue 64 --context 4096 "
     "--device cpu|cuda --threads N --name NAME --tokenizer DIR --lora NAME=DIR,... --prefill-chunk 256 --step-tokens N "
     "--max-body-mb 8]   OpenAI-compatible server (the demo model without MODEL_DIR)"},
    {"bench-serve", mwb::cli::run_bench_serve,
     "bench-serve [--url http://127.0.0.1:8080 --api-key KEY --model NAME | MODEL_DIR --tokenizer DIR --device cpu|cuda --max-batch N] "
     "[--clients 8 --requests N --prompt 128 --gen 64 --seed S]   load test: aggregate tok/s, TTFT p50/p99"},
    {"export", mwb::cli::run_export,
     "export MODEL_DIR (--target vllm|sglang|trtllm|llama-server|ollama|k8s|compose|all --out DIR | --plan-only) "
     "[--gpu h200|h100|a100-80|a100-40|l40s|rtx4090|rtx6000-ada|mi300x --gpus-per-node 8 --nodes 1 --context 32768 --concurrency 64 "
     "--memory-fraction 0.9 --format checkpoint|bf16|int8|int4 --model-id ID --adapter DIR --adapter-name NAME]"},
#ifdef MWB_HAVE_DOCUMENTS
    {"docs", mwb::cli::run_docs,
     "docs index --db FILE PATH... [--collection NAME --ocr-lang eng --chunk-tokens 128 --overlap 24 --embed MODEL_DIR]; "
     "docs search --db FILE \"query\" [--top 5 --embed MODEL_DIR --json]; "
     "docs ask MODEL_DIR --db FILE \"question\" [--top 5 --embed MODEL_DIR --max-new 512 --temperature T --device cpu|cuda]; "
     "docs list --db FILE"},
    {"bench-docs", mwb::cli::run_bench_docs,
     "bench-docs [--pages 200 --ocr-pages 8 --chunks 10000 --queries 200]   pages/s of text PDFs and OCR, query latency p50/p99"},
#endif
    {"train", mwb::cli::run_train,
     "train MODEL_DIR --data FILE(.jsonl|.safetensors) --out DIR [--init-adapter DIR | --targets a,b --rank R --alpha A --rslora] "
     "[--lr X --beta1 --beta2 --eps --weight-decay --batch B --grad-accum N (--steps N | --epochs E) --no-shuffle "
     "--scheduler constant|linear|cosine --warmup N --clip X --cutoff T --train-on-prompt --skip-bad-lines --val-split F --seed S "
     "--checkpoint-every N --resume DIR --metrics FILE.jsonl --gradient-checkpointing --tokenizer DIR --threads N --device cpu|cuda]; "
     "train MODEL_DIR --estimate [--cutoff T --targets a,b --rank R]   the memory plan"},
    {"bench-train", mwb::cli::run_bench_train,
     "bench-train --shape v3-16b --layers N --random-weights [--rank 16 --seq 1024 --batch 4 --steps 2 --targets a,b "
     "--gradient-checkpointing --threads N --seed S --device cpu|cuda]"},
    {"merge", mwb::cli::run_merge, "merge MODEL_DIR --adapter DIR --out DIR [--dtype float32|bfloat16|float16 --shard-size GB]"},
    {"tokenize", mwb::cli::run_tokenize, "tokenize --tokenizer DIR (--text T | --jsonl FILE) [--special]"},
    {"detokenize", mwb::cli::run_detokenize, "detokenize --tokenizer DIR --ids 1,2,3 [--skip-special]"},
    {"template", mwb::cli::run_template, "template --tokenizer DIR --messages FILE.json [--generation-prompt]"},
    {"bench-tokenizer", mwb::cli::run_bench_tokenizer, "bench-tokenizer --tokenizer DIR --file F"},
};

void print_usage() {
    std::fprintf(stderr, "usage: mwb COMMAND ...\n\ncommands:\n");
    for (const auto& command : kCommands) std::fprintf(stderr, "  mwb %s\n", command.usage);
    std::fprintf(stderr, "\n  mwb COMMAND --help    that command's usage\n  mwb --version\n");
}

bool asks_for_help(const char* argument) { return !std::strcmp(argument, "--help") || !std::strcmp(argument, "-h"); }

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || asks_for_help(argv[1])) {
        print_usage();
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        std::printf("mwb %s\n", MWB_VERSION);
        return 0;
    }
    for (const auto& command : kCommands) {
        if (std::strcmp(argv[1], command.name)) continue;
        for (int i = 2; i < argc; ++i)
            if (asks_for_help(argv[i])) {
                std::printf("usage: mwb %s\n", command.usage);
                return 0;
            }
        return command.run(argc - 2, argv + 2);
    }
    std::fprintf(stderr, "mwb: unknown command '%s'\n\n", argv[1]);
    print_usage();
    return 2;
}
