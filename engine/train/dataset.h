// Training data: JSONL in the formats people bring — alpaca (instruction / input / output, optional system and
// history), messages ({"messages": [{"role", "content"}]}, also ShareGPT's "conversations" with from / value)
// and plain {"text"} — or a pre-tokenized safetensors file (int64 `data` or `input_ids`, and `labels`, both
// [rows, tokens]). Conversations are rendered with the model's own chat template; labels cover the assistant
// turns unless every token is trained on. Rows longer than the cutoff are truncated and counted.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/result.h"

namespace mwb::tok {
class Tokenizer;
}

namespace mwb::train {

struct TokenRow {
    std::vector<int32_t> ids;
    std::vector<int64_t> labels;  // kIgnoredLabel (-100) where nothing is learnt
};

struct DatasetStats {
    int64_t rows = 0;
    int64_t tokens = 0;
    int64_t truncated_rows = 0;
    int64_t label_tokens = 0;  // tokens the loss is computed on
    int64_t skipped_lines = 0;
    // The skipped lines (the first kMaxReportedBadLines): line number and why.
    std::vector<std::pair<int64_t, std::string>> bad_lines;
    static constexpr size_t kMaxReportedBadLines = 100;
};

struct Dataset {
    std::vector<TokenRow> rows;
    DatasetStats stats;
};

struct DatasetOptions {
    int64_t cutoff = 1024;        // tokens per row at most
    bool train_on_prompt = false; // labels on every token, not only the assistant's
    bool skip_bad_lines = false;  // else the first bad line is an error naming file, line and field
};

// Whether reading `path` needs the model's tokenizer: JSONL does, a pre-tokenized .safetensors file does not.
bool needs_tokenizer(const std::string& path);

// `tokenizer` is needed for JSONL and may be null for a pre-tokenized file.
Result<Dataset> load_dataset(const std::string& path, const tok::Tokenizer* tokenizer, const DatasetOptions& options);

// Moves `fraction` of the rows, chosen from `seed`, out of `data` into the returned validation set.
Dataset split_validation(Dataset& data, double fraction, uint64_t seed);

struct TrainingData {
    Dataset train, validation;
};

// What a training run reads: the dataset of `path` (JSONL through the tokenizer in `tokenizer_directory`), with
// `validation_split` of its rows held out as split_validation() chooses them.
Result<TrainingData> load_training_data(const std::string& path, const std::string& tokenizer_directory, const DatasetOptions& options,
                                        double validation_split, uint64_t seed);

}  // namespace mwb::train
