// What every backend (CPU, CUDA) offers the generation code: a KV cache of sequence slots and a forward pass
// over a batch of sequence chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/blocks/low_rank.h"
#include "engine/model/model_graph.h"
#include "engine/observe/observer.h"

namespace mwb {

// A run of consecutive tokens of one sequence: prefill of a prompt, or one decoded token.
struct SequenceChunk {
    int64_t slot = 0;            // KV-cache slot of the sequence
    int64_t start_position = 0;  // position of the chunk's first token; the cache holds the tokens before it
    int64_t token_count = 0;
};

// Rows of a batch whose input is given rather than looked up in the embedding table: an image's features in
// place of its placeholder tokens. Row rows[i] of the batch takes values[i·hidden, (i+1)·hidden).
struct EmbeddingOverrides {
    std::vector<int64_t> rows;   // indices into the batch's tokens
    std::vector<float> values;   // [rows.size(), hidden_size]

    bool empty() const { return rows.empty(); }
};

struct ForwardBatch {
    std::vector<int32_t> tokens;  // the chunks' tokens, concatenated in chunk order
    std::vector<SequenceChunk> chunks;
    bool logits_for_all_tokens = false;  // else only for each chunk's last token
    const LowRankDeltas* adapter = nullptr;  // a LoRA adapter applied unmerged to the whole batch, or none
    EmbeddingOverrides embedding_overrides{};  // none for text
};

struct MemoryReport {
    size_t weight_bytes = 0;
    size_t kv_cache_bytes = 0;
    size_t workspace_bytes = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // Allocates the KV cache: `slots` sequences of at most `max_tokens` each.
    virtual Status reserve_cache(int64_t slots, int64_t max_tokens) = 0;
    virtual int64_t cache_slots() const = 0;
    virtual int64_t cache_capacity() const = 0;
    // Logits [rows, vocab], one row per chunk (or per token with logits_for_all_tokens), row-major.
    virtual Result<std::vector<float>> forward(const ForwardBatch& batch, ForwardObserver* observer) = 0;
    virtual MemoryReport memory() const = 0;
};

// Embedding overrides fit a batch (or a prompt) of `tokens` tokens: `hidden` values per row, rows within the tokens.
Status check_embedding_overrides(const EmbeddingOverrides& overrides, int64_t tokens, int64_t hidden);

std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const ModelGraph> graph, int threads = 0);

}  // namespace mwb
