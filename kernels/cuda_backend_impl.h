// The CUDA backend's implementation class, shared by the files that define its parts: cuda_backend.cpp (setup,
// the KV cache and workspace, the forward pass and its CUDA graphs), cuda_layers.cpp (attention and feed-forward
// blocks as kernel and GEMM launches) and cuda_observe.cpp (copies for observers: logits, routing, hidden states,
// attention snapshots).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/blas.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_planning.h"
#include "kernels/device_adapter.h"
#include "kernels/device_weights.h"
#include "kernels/kernels.h"

namespace mwb::cuda {

constexpr int64_t kGemvRows = 16;  // up to this many rows, quantised weights and dense MLPs use the GEMV kernels

// Page-locked host memory, so device-to-host copies are truly asynchronous.
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    ~PinnedBuffer() { release(); }
    Status reserve(size_t bytes) {
        if (bytes <= bytes_) return {};
        release();
        if (cudaMallocHost(&data_, bytes) != cudaSuccess) {
            cudaGetLastError();
            data_ = nullptr;
            return make_error("out of page-locked host memory (" + describe_bytes(bytes) + ")");
        }
        bytes_ = bytes;
        return {};
    }
    void release() {
        if (data_) cudaFreeHost(data_);
        data_ = nullptr;
        bytes_ = 0;
    }
    template <class T>
    T* as() const { return static_cast<T*>(data_); }

private:
    void* data_ = nullptr;
    size_t bytes_ = 0;
};

// Typed views of the workspace buffers of plan_workspace().
struct Workspace {
    int64_t rows = 0;
    int32_t *tokens = nullptr, *slots = nullptr, *positions = nullptr, *output_rows = nullptr, *sampled = nullptr;
    DeviceSamplingParams* sampling = nullptr;
    float* x = nullptr;
    bf16 *h = nullptr, *delta = nullptr;
    bf16 *qkv_a = nullptr, *q_a_normed = nullptr, *q = nullptr, *q_cat = nullptr, *o_latent = nullptr, *attended = nullptr;
    bf16 *expanded = nullptr, *keys = nullptr, *qkv = nullptr;
    float* scores = nullptr;
    bf16* probabilities = nullptr;
    int64_t query_tile = 1;
    float* partials = nullptr;
    bf16 *gate_up = nullptr, *act = nullptr, *shared_out = nullptr;
    float *router_logits = nullptr, *routed_weights = nullptr;
    int32_t *routed_experts = nullptr, *expert_offsets = nullptr, *active_experts = nullptr;
    int32_t *row_of_assignment = nullptr, *token_of_row = nullptr;
    bf16 *dispatched = nullptr, *expert_gate_up = nullptr, *expert_act = nullptr, *expert_out = nullptr;
    bf16* final_rows = nullptr;
    float* logits = nullptr;
    void* cublas = nullptr;
    bf16* dequantise = nullptr;
    size_t dequantise_bytes = 0;
};

class CudaBackendImpl final : public CudaBackend {
public:
    CudaBackendImpl(std::shared_ptr<const ModelGraph> graph, const CudaOptions& options)
        : graph_(std::move(graph)), config_(graph_->config), options_(options) {}

    ~CudaBackendImpl() override {
        drop_graphs();
        blas_.reset();
        runtime_memory_.release();
        weight_memory_.release();
        if (stream_) cudaStreamDestroy(stream_);
    }

    Status initialise();

    std::string name() const override { return "cuda"; }
    const ModelGraph& model() const override { return *graph_; }
    std::string device_name() const override { return device_name_; }
    Status reserve_cache(int64_t slots, int64_t max_tokens) override;
    int64_t cache_slots() const override { return slots_; }
    int64_t cache_capacity() const override { return capacity_; }
    Result<std::vector<float>> forward(const ForwardBatch& batch, ForwardObserver* observer) override;
    Result<std::vector<int32_t>> forward_sampled(const ForwardBatch& batch, std::span<const SamplingParams> sampling,
                                                 ForwardObserver* observer) override;
    MemoryReport memory() const override {
        return {weight_memory_.bytes(), cache_bytes_, runtime_memory_.bytes() - cache_bytes_};
    }
    size_t device_bytes_reserved() const override {
        size_t adapters = 0;
        for (const CachedAdapter& a : adapters_) adapters += a.adapter->bytes();
        return weight_memory_.bytes() + runtime_memory_.bytes() + adapters;
    }
    size_t device_bytes_total() const override { return device_total_; }
    const QuantisationError& worst_quantisation_error() const override { return model_.worst_quantisation_error; }

private:
    struct CachedAdapter {
        uint64_t identity = 0;
        uint64_t last_use = 0;
        std::unique_ptr<DeviceAdapter> adapter;
    };

    // Takes the batch's adapter and embedding overrides for the forward pass that follows.
    Status bind_inputs(const ForwardBatch& batch);
    Result<const DeviceAdapter*> device_adapter(const LowRankDeltas& deltas);
    Status write_embedding_overrides(const MicroBatch& batch);
    Status run(const MicroBatch& batch, ForwardObserver* observer, const std::vector<DeviceSamplingParams>* sampling,
               float* logits_host, int32_t* sampled_host, bool use_graph);
    Status enqueue(const MicroBatch& batch, int64_t splits, ForwardObserver* observer, bool sample, float* logits_host);
    Status mla_attention(int64_t layer, const DeviceMla& a, const MicroBatch& batch, int64_t splits, ForwardObserver* observer);
    Status gqa_attention(int64_t layer, const DeviceGqa& a, const MicroBatch& batch, int64_t splits, ForwardObserver* observer);
    Status mlp(const DeviceMlp& m, int64_t rows, bf16* out);
    Status moe(const DeviceMoe& m, const MicroBatch& batch);
    Status run_matrix(const DeviceMatrix& w, const bf16* x, int64_t x_stride, int64_t rows, void* y, int64_t y_stride, bool y_fp32);
    Status run_linear(const DeviceLinear& w, const bf16* x, int64_t x_stride, int64_t rows, bf16* y, int64_t y_stride);
    // The fused feed-forward kernels take no biases (no DeepSeek MLP has one) and no adapter.
    bool fusable(const DeviceMlp& m) const { return !m.gate_up.bias && !m.down.bias && !(adapter_ && adapter_->adapts(m)); }
    Status deliver_logits(const MicroBatch& batch, int64_t first, int64_t count, float* logits_host);
    Status deliver_routing(const MicroBatch& batch, ForwardObserver* observer);
    Status deliver_hidden(const MicroBatch& batch, ForwardObserver* observer, int64_t index, bool normed);
    Status deliver_attention(const MicroBatch& batch, int64_t first_row, int64_t rows, int64_t layer, const ProbabilityQuery& query,
                             ForwardObserver* observer);
    int64_t decode_splits(const MicroBatch& batch) const;
    // Decode-only steps run as CUDA graphs unless the observer wants intermediate tensors (hidden states,
    // attention), which need host copies in the middle of the step.
    // So do steps with an adapter or embedding overrides, whose launches and copies vary from batch to batch.
    bool graph_allowed(const BatchPlan& plan, ForwardObserver* observer) const {
        if (!options_.cuda_graphs || !plan.decode_only || plan.micro_batches.size() != 1) return false;
        if (adapter_ || overrides_) return false;
        if (!observer) return true;
        if (observer->wants_hidden_states()) return false;
        for (int64_t l = 0; l < config_.num_layers; ++l)
            if (observer->wants_attention(l)) return false;
        return true;
    }
    bf16* cache_layer(int64_t layer) const { return cache_ + size_t(layer) * size_t(slots_ * capacity_ * cache_width_); }
    void drop_graphs();

    std::shared_ptr<const ModelGraph> graph_;
    const ModelConfig& config_;
    CudaOptions options_;
    std::string device_name_;
    int64_t multiprocessors_ = 0;
    size_t device_total_ = 0;
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<Blas> blas_;
    DeviceMemory weight_memory_, runtime_memory_;
    DeviceModel model_;
    RopeParams rope_;
    int64_t cache_width_ = 0;  // bf16 values per token per layer
    int64_t slots_ = 0, capacity_ = 0;
    size_t cache_bytes_ = 0;
    bf16* cache_ = nullptr;
    Workspace ws_;
    PinnedBuffer pinned_inputs_, pinned_sampled_, pinned_offsets_, pinned_logits_, pinned_records_;
    std::map<std::tuple<int64_t, int64_t, bool>, cudaGraphExec_t> graphs_;
    std::vector<CachedAdapter> adapters_;
    uint64_t adapter_uses_ = 0;
    // The batch being run's (forward passes are not reentrant): its adapter, its overrides and, per token of the
    // batch, the override row it takes (-1 for none).
    const DeviceAdapter* adapter_ = nullptr;
    const EmbeddingOverrides* overrides_ = nullptr;
    std::vector<int64_t> override_of_row_;
};

}  // namespace mwb::cuda
