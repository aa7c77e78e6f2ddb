// Host-side planning of the CUDA backend, free of CUDA so that the CPU test suite covers it: how a forward
// batch is split into micro-batches and reordered, how MoE assignments are grouped by expert, how decode
// attention is split, and how many bytes the weights, the KV cache and the workspace take.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/backend.h"

namespace mwb::cuda {

// A piece of a prompt chunk that lies in one micro-batch; its rows are contiguous.
struct PrefillPiece {
    int64_t slot = 0;
    int64_t start_position = 0;
    int64_t token_count = 0;
    int64_t first_row = 0;  // inside the micro-batch
};

// Rows that run through the model together. Single-token chunks (decode) come first so that the absorbed MLA
// path and the decode attention see one contiguous range; prompt pieces follow.
struct MicroBatch {
    std::vector<int32_t> tokens, cache_slots, positions;  // per row (cache_slots: "slots" is a Qt keyword)
    std::vector<int64_t> batch_rows;                      // per row: its index among the caller's tokens
    int64_t decode_rows = 0;                        // rows [0, decode_rows) are single decoded tokens
    std::vector<PrefillPiece> prefill;
    std::vector<int32_t> output_rows;     // rows whose logits are wanted ...
    std::vector<int64_t> output_indices;  // ... and where each goes in the caller's output order
    int64_t longest_decode_context = 0;   // max(position + 1) over the decode rows

    int64_t rows() const { return int64_t(tokens.size()); }
};

struct BatchPlan {
    std::vector<MicroBatch> micro_batches;  // run in order: later pieces of a prompt attend to earlier ones
    int64_t output_rows = 0;
    bool decode_only = false;  // every chunk is one token: the CUDA-graph path
};

// Validates the batch against the cache (slot range, capacity, vocabulary, one chunk per slot) and plans it.
Result<BatchPlan> plan_batch(const ForwardBatch& batch, int64_t slot_count, int64_t capacity, int64_t vocab, int64_t max_rows);

// Tokens grouped by expert: rows [offsets[e], offsets[e+1]) of the dispatched buffer belong to expert e, in
// token order; `row_of_assignment[t·k + j]` is where token t's j-th expert choice went.
struct MoeDispatch {
    std::vector<int32_t> offsets;  // experts + 1
    std::vector<int32_t> token_of_row;
    std::vector<int32_t> row_of_assignment;
    std::vector<int32_t> active_experts;  // experts with at least one token, ascending
};
MoeDispatch dispatch_by_expert(std::span<const int32_t> chosen_experts, int64_t experts_per_token, int64_t experts);

// Split-KV decode attention: how many key ranges each (row, head block) is cut into so the grid fills the GPU
// without exceeding `max_blocks` (the size of the partial-result buffer). A power of two, so that CUDA graphs
// captured for one split count serve a range of context lengths.
int64_t decode_attention_splits(int64_t rows, int64_t head_blocks, int64_t longest_context, int64_t multiprocessors,
                                int64_t max_blocks);
// Blocks the decode-attention partial buffer holds: enough for two waves of four blocks per multiprocessor.
// Each block keeps kDecodeHeadRows × (value_dim + 2) floats.
int64_t decode_partial_blocks(int64_t multiprocessors);
// Heads that one decode-attention block handles: a divisor of the heads sharing one KV head, at most kDecodeHeadRows.
int64_t decode_heads_per_block(int64_t heads_sharing_kv);

// Query rows of a prompt chunk whose fp32 scores and bf16 probabilities fit `budget_bytes` at `keys` keys.
int64_t prefill_query_tile(int64_t heads, int64_t keys, int64_t chunk_rows, size_t budget_bytes);

// INT4: two values a byte (the even column in the low nibble), symmetric in [-7, 7].
enum class WeightFormat { BF16, FP8, INT8, INT4 };
// Weight-only quantisation on load for GPUs that cannot hold bf16: W8A16 or W4A16, one scale per row per 128 columns.
enum class WeightQuantisation { None, Int8, Int4 };

// The largest relative error ‖W − Ŵ‖ / ‖W‖ among the matrices quantised on load, and which one.
struct QuantisationError {
    double relative_error = 0;
    std::string matrix;
};

// Bytes of a [rows, cols] matrix's values alone.
size_t matrix_value_bytes(int64_t rows, int64_t cols, WeightFormat format);
// Bytes one linear weight takes on the device: bf16, or 8-/4-bit values with one fp32 scale per row per 128 columns.
size_t device_linear_bytes(int64_t out_features, int64_t in_features, WeightFormat format);
// The format a checkpoint weight gets on the device (FP8 stays FP8; others become int8 / int4 when quantised).
WeightFormat device_format(const LinearWeight& weight, WeightQuantisation quantisation);

struct MemoryPlan {
    size_t weight_bytes = 0;
    size_t kv_cache_bytes = 0;
    size_t workspace_bytes = 0;
    size_t total() const { return weight_bytes + kv_cache_bytes + workspace_bytes; }
};

// Every buffer the forward pass needs, for micro-batches of `max_rows` rows, at most `max_decode_rows` decoded
// sequences per step, and a KV cache of `capacity` tokens.
struct WorkspaceShape {
    int64_t max_rows = 0;
    int64_t max_decode_rows = 0;
    int64_t capacity = 0;
    int64_t multiprocessors = 0;
    size_t attention_budget_bytes = size_t(64) << 20;
    size_t dequantise_scratch_bytes = 0;  // for 8-bit weights in large GEMMs
};
struct WorkspaceLayout {
    struct Buffer {
        std::string name;
        size_t bytes = 0;
        size_t offset = 0;
    };
    std::vector<Buffer> buffers;
    size_t total_bytes = 0;
    size_t offset_of(const std::string& name) const;  // npos-like SIZE_MAX when absent
};
WorkspaceLayout plan_workspace(const ModelConfig& config, const WorkspaceShape& shape);

size_t kv_cache_bytes(const ModelConfig& config, int64_t slot_count, int64_t capacity);
size_t device_weight_bytes(const ModelGraph& graph, WeightQuantisation quantisation);

// "needed 3.2 GiB, 1.1 GiB free" style text for out-of-memory errors.
std::string describe_bytes(size_t bytes);

constexpr int64_t kScaleGroupColumns = 128;   // columns per fp32 scale of an 8-bit weight
// Decode attention (attention_decode.cu): a block serves up to kDecodeHeadRows heads of one KV head (one 16-row
// tensor-core tile of queries, so partial states are kept for 16 rows per block) and reads keys in tiles of
// kDecodeKeyTile rows; key and value widths are multiples of 16 within these bounds (its shared memory).
constexpr int64_t kDecodeHeadRows = 16;
constexpr int64_t kDecodeKeyTile = 16;
constexpr int64_t kMaxDecodeKeyDim = 640;
constexpr int64_t kMaxDecodeValueDim = 512;
constexpr int64_t kMaxDecodeRows = 64;        // sequences one decode step serves
constexpr int64_t kLogitsRowsPerPass = 64;    // lm_head rows computed per pass into the logits buffer
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;  // NVIDIA's recommendation for Hopper
constexpr size_t kSamplingParamBytes = 32;                  // one DeviceSamplingParams

}  // namespace mwb::cuda
