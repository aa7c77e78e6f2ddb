// Every `mwb` subcommand: takes the arguments after its name, prints its result, returns the exit code.
#pragma once

namespace mwb::cli {

// Model commands (model_commands.cpp).
int run_info(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_logits(int argc, char** argv);
int run_bench(int argc, char** argv);

// Serving commands (serve_commands.cpp).
int run_serve(int argc, char** argv);
int run_bench_serve(int argc, char** argv);

// Deployment commands (export_commands.cpp).
int run_export(int argc, char** argv);

// Document commands (docs_commands.cpp, bench_docs.cpp), in builds with MWB_DOCUMENTS.
int run_docs(int argc, char** argv);
int run_bench_docs(int argc, char** argv);

// Training commands (train_commands.cpp).
int run_train(int argc, char** argv);
int run_merge(int argc, char** argv);
int run_bench_train(int argc, char** argv);

// Tokenizer commands (tokenizer_commands.cpp).
int run_tokenize(int argc, char** argv);
int run_detokenize(int argc, char** argv);
int run_template(int argc, char** argv);
int run_bench_tokenizer(int argc, char** argv);

}  // namespace mwb::cli
