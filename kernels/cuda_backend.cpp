// The CUDA backend: weights uploaded once, a KV cache and a bounded workspace per reserve_cache(), and a forward
// pass that enqueues the kernels of kernels.h and cuBLAS GEMMs on one stream. Decode steps (one token per
// sequence, no observer that needs intermediate tensors) are captured once per (batch, split count) as CUDA graphs
// and replayed; the only host synchronisation per step is the read-back of the logits or the sampled ids.
#include "kernels/cuda_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <tuple>

#include "kernels/blas.h"
#include "kernels/cuda_planning.h"
#include "kernels/device_weights.h"
#include "kernels/kernels.h"

namespace mwb {
namespace cuda {
namespace {

static_assert(sizeof(DeviceSamplingParams) == kSamplingParamBytes);

constexpr int64_t kGemvRows = 16;  // up to this many rows, 8-bit weights and dense MLPs use the GEMV kernels

// The fused feed-forward kernels take no biases (no DeepSeek MLP has one).
bool fusable(const DeviceMlp& m) { return !m.gate_up.bias && !m.down.bias; }

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
    size_t device_bytes_reserved() const override { return weight_memory_.bytes() + runtime_memory_.bytes(); }
    size_t device_bytes_total() const override { return device_total_; }
    const QuantisationError& worst_quantisation_error() const override { return model_.worst_quantisation_error; }

private:
    Status run(const MicroBatch& batch, ForwardObserver* observer, const std::vector<DeviceSamplingParams>* sampling,
               float* logits_host, int32_t* sampled_host, bool use_graph);
    Status enqueue(const MicroBatch& batch, int64_t splits, ForwardObserver* observer, bool sample, float* logits_host);
    Status mla_attention(int64_t layer, const DeviceMla& a, const MicroBatch& batch, int64_t splits, ForwardObserver* observer);
    Status gqa_attention(int64_t layer, const DeviceGqa& a, const MicroBatch& batch, int64_t splits, ForwardObserver* observer);
    Status mlp(const DeviceMlp& m, int64_t rows, bf16* out);
    Status moe(const DeviceMoe& m, const MicroBatch& batch);
    Status run_matrix(const DeviceMatrix& w, const bf16* x, int64_t x_stride, int64_t rows, void* y, int64_t y_stride, bool y_fp32);
    Status run_linear(const DeviceLinear& w, const bf16* x, int64_t x_stride, int64_t rows, bf16* y, int64_t y_stride);
    Status deliver_logits(const MicroBatch& batch, int64_t first, int64_t count, float* logits_host);
    Status deliver_routing(const MicroBatch& batch, ForwardObserver* observer);
    Status deliver_hidden(const MicroBatch& batch, ForwardObserver* observer, int64_t index, bool normed);
    Status deliver_attention(const MicroBatch& batch, int64_t first_row, int64_t rows, int64_t layer, const ProbabilityQuery& query,
                             ForwardObserver* observer);
    int64_t decode_splits(const MicroBatch& batch) const;
    // Decode-only steps run as CUDA graphs unless the observer wants intermediate tensors (hidden states,
    // attention), which need host copies in the middle of the step.
    bool graph_allowed(const BatchPlan& plan, ForwardObserver* observer) const {
        if (!options_.cuda_graphs || !plan.decode_only || plan.micro_batches.size() != 1) return false;
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
};

Status CudaBackendImpl::initialise() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        cudaGetLastError();
        return make_error("no CUDA device is available");
    }
    if (options_.device < 0 || options_.device >= devices)
        return make_error("CUDA device " + std::to_string(options_.device) + " does not exist (" + std::to_string(devices) + " found)");
    MWB_CUDA_TRY(cudaSetDevice(options_.device));
    cudaDeviceProp properties{};
    MWB_CUDA_TRY(cudaGetDeviceProperties(&properties, options_.device));
    device_name_ = properties.name;
    multiprocessors_ = properties.multiProcessorCount;
    device_total_ = properties.totalGlobalMem;
    MWB_TRY(check_cuda_support(config_));
    if (options_.max_batch_tokens < 1) return make_error("max_batch_tokens must be at least 1");

    size_t free_bytes = 0, total_bytes = 0;
    MWB_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t needed = device_weight_bytes(*graph_, options_.quantisation);
    if (needed > free_bytes)
        return make_error("out of GPU memory: the weights need " + describe_bytes(needed) + ", " + describe_bytes(free_bytes) + " of " +
                          describe_bytes(total_bytes) + " free on " + device_name_ +
                          (options_.quantisation == WeightQuantisation::None ? " (weight-only int8 would need about half, int4 about a quarter)"
                           : options_.quantisation == WeightQuantisation::Int8 ? " (weight-only int4 would need about half)"
                                                                               : ""));

    MWB_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    blas_ = std::make_unique<Blas>();
    MWB_TRY(blas_->initialise(stream_));
    auto model = upload_model(*graph_, options_.quantisation, weight_memory_, stream_);
    if (!model) return model.error();
    model_ = std::move(model.value());
    rope_.inverse_frequency = model_.rope_inverse_frequency;
    rope_.rotary_dim = graph_->rope.rotary_dim;
    rope_.interleaved = graph_->rope.layout == RopeLayout::Interleaved;
    rope_.attention_factor = graph_->rope.attention_factor;
    cache_width_ = config_.kv_cache_values_per_token() / config_.num_layers;
    return {};
}

void CudaBackendImpl::drop_graphs() {
    for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
    graphs_.clear();
}

Status CudaBackendImpl::reserve_cache(int64_t slots, int64_t max_tokens) {
    if (slots <= 0 || max_tokens <= 0) return make_error("the KV cache needs at least one slot and one token");
    MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    drop_graphs();
    runtime_memory_.release();
    cache_ = nullptr;
    slots_ = capacity_ = 0;
    cache_bytes_ = 0;

    WorkspaceShape shape;
    shape.max_rows = options_.max_batch_tokens;
    shape.capacity = max_tokens;
    shape.multiprocessors = multiprocessors_;
    shape.dequantise_scratch_bytes = model_.dequantise_scratch_bytes;
    auto layout_for = [&] {
        shape.max_decode_rows = std::min(shape.max_rows, kMaxDecodeRows);
        return plan_workspace(config_, shape);
    };
    WorkspaceLayout layout = layout_for();
    while (options_.max_workspace_bytes && layout.total_bytes > options_.max_workspace_bytes && shape.max_rows > 16) {
        shape.max_rows /= 2;
        layout = layout_for();
    }
    if (options_.max_workspace_bytes && layout.total_bytes > options_.max_workspace_bytes)
        return make_error("the workspace for a context of " + std::to_string(max_tokens) + " tokens needs " +
                          describe_bytes(layout.total_bytes) + ", more than the allowed " + describe_bytes(options_.max_workspace_bytes));

    const size_t cache_bytes = kv_cache_bytes(config_, slots, max_tokens);
    size_t free_bytes = 0, total_bytes = 0;
    MWB_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (cache_bytes + layout.total_bytes > free_bytes)
        return make_error("out of GPU memory: a KV cache of " + std::to_string(slots) + " × " + std::to_string(max_tokens) + " tokens (" +
                          describe_bytes(cache_bytes) + ") and the workspace (" + describe_bytes(layout.total_bytes) + ") need " +
                          describe_bytes(cache_bytes + layout.total_bytes) + ", " + describe_bytes(free_bytes) + " of " +
                          describe_bytes(total_bytes) + " free");

    auto fail = [&](const Error& error) -> Status {
        runtime_memory_.release();
        cache_ = nullptr;
        return error;
    };
    // One key tile of rows more: decode attention reads a whole tile of a sequence shorter than one. All zero, so
    // rows no sequence has written yet hold finite values (masked keys meet a probability of 0 in P·V).
    const size_t cache_allocation = cache_bytes + size_t(kDecodeKeyTile * cache_width_) * 2;
    auto cache = runtime_memory_.allocate(cache_allocation, "the KV cache");
    if (!cache) return fail(cache.error());
    if (const cudaError_t zeroed = cudaMemsetAsync(*cache, 0, cache_allocation, stream_); zeroed != cudaSuccess)
        return fail(cuda_error(zeroed, "zeroing the KV cache"));
    auto arena = runtime_memory_.allocate(layout.total_bytes, "the workspace");
    if (!arena) return fail(arena.error());
    cache_ = static_cast<bf16*>(*cache);
    cache_bytes_ = cache_bytes;

    auto* base = static_cast<uint8_t*>(*arena);
    auto at = [&](const char* name) -> void* {
        const size_t offset = layout.offset_of(name);
        return offset == SIZE_MAX ? nullptr : base + offset;
    };
    Workspace w;
    const int64_t R = shape.max_rows;
    w.rows = R;
    w.tokens = static_cast<int32_t*>(at("inputs"));
    w.slots = w.tokens + R;
    w.positions = w.tokens + 2 * R;
    w.output_rows = w.tokens + 3 * R;
    w.sampling = reinterpret_cast<DeviceSamplingParams*>(w.tokens + 4 * R);
    w.sampled = static_cast<int32_t*>(at("sampled"));
    w.x = static_cast<float*>(at("x"));
    w.h = static_cast<bf16*>(at("h"));
    w.delta = static_cast<bf16*>(at("delta"));
    w.qkv_a = static_cast<bf16*>(at("qkv_a"));
    w.q_a_normed = static_cast<bf16*>(at("q_a_normed"));
    w.q = static_cast<bf16*>(at("q"));
    w.q_cat = static_cast<bf16*>(at("q_cat"));
    w.o_latent = static_cast<bf16*>(at("o_latent"));
    w.attended = static_cast<bf16*>(at("attended"));
    w.expanded = static_cast<bf16*>(at("expanded"));
    w.keys = static_cast<bf16*>(at("keys"));
    w.qkv = static_cast<bf16*>(at("qkv"));
    w.scores = static_cast<float*>(at("scores"));
    w.probabilities = static_cast<bf16*>(at("probabilities"));
    w.query_tile = prefill_query_tile(config_.num_heads, max_tokens, R, shape.attention_budget_bytes);
    w.partials = static_cast<float*>(at("decode_partials"));
    w.gate_up = static_cast<bf16*>(at("gate_up"));
    w.act = static_cast<bf16*>(at("act"));
    w.shared_out = static_cast<bf16*>(at("shared_out"));
    w.router_logits = static_cast<float*>(at("router_logits"));
    w.routed_experts = static_cast<int32_t*>(at("routed_experts"));
    w.routed_weights = static_cast<float*>(at("routed_weights"));
    w.expert_offsets = static_cast<int32_t*>(at("expert_offsets"));
    w.active_experts = static_cast<int32_t*>(at("active_experts"));
    w.row_of_assignment = static_cast<int32_t*>(at("row_of_assignment"));
    w.token_of_row = static_cast<int32_t*>(at("token_of_row"));
    w.dispatched = static_cast<bf16*>(at("dispatched"));
    w.expert_gate_up = static_cast<bf16*>(at("expert_gate_up"));
    w.expert_act = static_cast<bf16*>(at("expert_act"));
    w.expert_out = static_cast<bf16*>(at("expert_out"));
    w.final_rows = static_cast<bf16*>(at("final_rows"));
    w.logits = static_cast<float*>(at("logits"));
    w.cublas = at("cublas");
    w.dequantise = static_cast<bf16*>(at("dequantise"));
    w.dequantise_bytes = shape.dequantise_scratch_bytes;
    ws_ = w;
    if (auto status = blas_->set_workspace(ws_.cublas, kCublasWorkspaceBytes); !status) return fail(status.error());

    const int64_t experts = config_.moe ? config_.moe->n_routed_experts : 0;
    for (auto [buffer, bytes] : {std::pair{&pinned_inputs_, size_t(R) * (4 * sizeof(int32_t) + kSamplingParamBytes)},
                                 std::pair{&pinned_sampled_, size_t(R) * sizeof(int32_t)},
                                 std::pair{&pinned_offsets_, size_t(experts + 1) * sizeof(int32_t)},
                                 std::pair{&pinned_logits_, size_t(std::min(R, kLogitsRowsPerPass)) * size_t(config_.vocab_size) * sizeof(float)}})
        if (auto status = buffer->reserve(bytes); !status) return fail(status.error());
    slots_ = slots;
    capacity_ = max_tokens;
    return {};
}

int64_t CudaBackendImpl::decode_splits(const MicroBatch& batch) const {
    if (batch.decode_rows == 0) return 1;
    const int64_t sharing = config_.mla ? config_.num_heads : config_.num_heads / config_.num_kv_heads;
    const int64_t head_blocks = config_.num_heads / decode_heads_per_block(sharing);
    return decode_attention_splits(batch.decode_rows, head_blocks, batch.longest_decode_context, multiprocessors_,
                                   decode_partial_blocks(multiprocessors_));
}

Result<std::vector<float>> CudaBackendImpl::forward(const ForwardBatch& batch, ForwardObserver* observer) {
    if (slots_ == 0) return make_error("reserve the KV cache before running the model");
    auto plan = plan_batch(batch, slots_, capacity_, config_.vocab_size, ws_.rows);
    if (!plan) return plan.error();
    std::vector<float> logits(size_t(plan->output_rows) * size_t(config_.vocab_size));
    const bool graph = graph_allowed(*plan, observer);
    for (const MicroBatch& micro : plan->micro_batches) MWB_TRY(run(micro, observer, nullptr, logits.data(), nullptr, graph));
    return logits;
}

Result<std::vector<int32_t>> CudaBackendImpl::forward_sampled(const ForwardBatch& batch, std::span<const SamplingParams> sampling,
                                                              ForwardObserver* observer) {
    if (slots_ == 0) return make_error("reserve the KV cache before running the model");
    if (batch.logits_for_all_tokens) return make_error("sampling on the GPU takes one token per chunk, not logits for all tokens");
    if (sampling.size() != batch.chunks.size()) return make_error("give one set of sampling parameters per chunk");
    auto plan = plan_batch(batch, slots_, capacity_, config_.vocab_size, ws_.rows);
    if (!plan) return plan.error();
    std::vector<int32_t> tokens(size_t(plan->output_rows), 0);
    const bool graph = graph_allowed(*plan, observer);
    for (const MicroBatch& micro : plan->micro_batches) {
        std::vector<DeviceSamplingParams> params;
        for (size_t i = 0; i < micro.output_rows.size(); ++i) {
            const SamplingParams& s = sampling[size_t(micro.output_indices[i])];  // one output per chunk: index = chunk
            DeviceSamplingParams d;
            d.temperature = float(s.temperature);
            d.top_k = int32_t(std::min<int64_t>(s.top_k, config_.vocab_size));
            d.top_p = float(s.top_p);
            d.min_p = float(s.min_p);
            d.seed = s.seed;
            d.counter = uint64_t(micro.positions[size_t(micro.output_rows[i])]) + 1;
            params.push_back(d);
        }
        MWB_TRY(run(micro, observer, &params, nullptr, tokens.data(), graph));
    }
    return tokens;
}

Status CudaBackendImpl::run(const MicroBatch& batch, ForwardObserver* observer, const std::vector<DeviceSamplingParams>* sampling,
                            float* logits_host, int32_t* sampled_host, bool use_graph) {
    const int64_t R = ws_.rows, outputs = int64_t(batch.output_rows.size());
    auto* inputs = pinned_inputs_.as<int32_t>();
    std::copy(batch.tokens.begin(), batch.tokens.end(), inputs);
    std::copy(batch.cache_slots.begin(), batch.cache_slots.end(), inputs + R);
    std::copy(batch.positions.begin(), batch.positions.end(), inputs + 2 * R);
    std::copy(batch.output_rows.begin(), batch.output_rows.end(), inputs + 3 * R);
    size_t upload = size_t(4 * R) * sizeof(int32_t);
    if (sampling) {
        std::memcpy(inputs + 4 * R, sampling->data(), sampling->size() * sizeof(DeviceSamplingParams));
        upload += sampling->size() * sizeof(DeviceSamplingParams);
    }
    MWB_CUDA_TRY(cudaMemcpyAsync(ws_.tokens, inputs, upload, cudaMemcpyHostToDevice, stream_));

    const int64_t splits = decode_splits(batch);
    if (use_graph && outputs <= kLogitsRowsPerPass) {
        const auto key = std::make_tuple(batch.decode_rows, splits, sampling != nullptr);
        auto found = graphs_.find(key);
        if (found == graphs_.end()) {
            MWB_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
            const Status captured = enqueue(batch, splits, nullptr, sampling != nullptr, nullptr);
            cudaGraph_t graph = nullptr;
            const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
            if (!captured.ok()) {
                if (graph) cudaGraphDestroy(graph);
                return captured;
            }
            MWB_CUDA_TRY(ended);
            cudaGraphExec_t exec = nullptr;
            const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
            cudaGraphDestroy(graph);
            MWB_CUDA_TRY(instantiated);
            found = graphs_.emplace(key, exec).first;
        }
        MWB_CUDA_TRY(cudaGraphLaunch(found->second, stream_));
        if (logits_host) MWB_TRY(deliver_logits(batch, 0, outputs, logits_host));
    } else {
        MWB_TRY(enqueue(batch, splits, observer, sampling != nullptr, logits_host));
    }
    if (sampled_host) {
        MWB_CUDA_TRY(cudaMemcpyAsync(pinned_sampled_.as<int32_t>(), ws_.sampled, size_t(outputs) * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream_));
    }
    if (observer) MWB_TRY(deliver_routing(batch, observer));
    MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    MWB_CUDA_TRY(cudaGetLastError());
    if (sampled_host)
        for (int64_t i = 0; i < outputs; ++i) sampled_host[batch.output_indices[size_t(i)]] = pinned_sampled_.as<int32_t>()[i];
    return {};
}

Status CudaBackendImpl::enqueue(const MicroBatch& batch, int64_t splits, ForwardObserver* observer, bool sample, float* logits_host) {
    const int64_t rows = batch.rows(), hidden = config_.hidden_size;
    const float eps = float(config_.rms_norm_eps);
    const bool hidden_wanted = observer && observer->wants_hidden_states();
    embed_tokens(model_.embedding, ws_.tokens, rows, hidden, ws_.x, stream_);
    if (hidden_wanted) MWB_TRY(deliver_hidden(batch, observer, 0, false));

    const bf16* pending = nullptr;  // the last block's output, added to the residual by the next norm
    const int64_t layers = int64_t(model_.layers.size());
    for (int64_t l = 0; l < layers; ++l) {
        const DeviceLayer& layer = model_.layers[size_t(l)];
        add_rms_norm(ws_.x, pending, layer.input_norm, rows, hidden, eps, ws_.h, hidden, stream_);
        if (layer.mla) MWB_TRY(mla_attention(l, layer.attention_mla, batch, splits, observer));
        else MWB_TRY(gqa_attention(l, layer.attention_gqa, batch, splits, observer));
        add_rms_norm(ws_.x, ws_.delta, layer.post_attention_norm, rows, hidden, eps, ws_.h, hidden, stream_);
        if (layer.moe) MWB_TRY(moe(layer.experts, batch));
        else MWB_TRY(mlp(layer.mlp, rows, ws_.delta));
        pending = ws_.delta;
        if (hidden_wanted && l + 1 < layers) {
            add_residual(ws_.x, ws_.delta, rows * hidden, stream_);
            pending = nullptr;
            MWB_TRY(deliver_hidden(batch, observer, l + 1, false));
        }
    }
    add_rms_norm(ws_.x, pending, model_.final_norm, rows, hidden, eps, ws_.h, hidden, stream_);
    if (hidden_wanted) MWB_TRY(deliver_hidden(batch, observer, layers, true));

    const int64_t outputs = int64_t(batch.output_rows.size());
    for (int64_t first = 0; first < outputs; first += kLogitsRowsPerPass) {
        const int64_t count = std::min(kLogitsRowsPerPass, outputs - first);
        gather_rows(ws_.h, hidden, ws_.output_rows + first, count, ws_.final_rows, stream_);
        MWB_TRY(run_matrix(model_.lm_head.matrix, ws_.final_rows, hidden, count, ws_.logits, config_.vocab_size, true));
        if (sample) sample_tokens(ws_.logits, count, config_.vocab_size, ws_.sampling + first, ws_.sampled + first, stream_);
        if (logits_host) MWB_TRY(deliver_logits(batch, first, count, logits_host));
    }
    return {};
}

Status CudaBackendImpl::run_matrix(const DeviceMatrix& w, const bf16* x, int64_t x_stride, int64_t rows, void* y, int64_t y_stride,
                                   bool y_fp32) {
    if (rows <= 0) return {};
    if (w.format == WeightFormat::BF16)
        return blas_->linear(x, x_stride, rows, static_cast<const bf16*>(w.values), w.rows, w.cols, y, y_fp32, y_stride);
    if (rows <= kGemvRows) {
        matrix_gemv(w, x, x_stride, rows, y_fp32 ? nullptr : static_cast<bf16*>(y), y_stride, y_fp32 ? static_cast<float*>(y) : nullptr,
                    stream_);
        return {};
    }
    // Many rows: dequantise the 8-bit weight a slice of rows at a time and let the tensor cores multiply.
    const int64_t slice = std::max<int64_t>(1, int64_t(ws_.dequantise_bytes / (size_t(w.cols) * 2)));
    for (int64_t r0 = 0; r0 < w.rows; r0 += slice) {
        const int64_t count = std::min(slice, w.rows - r0);
        dequantize_rows(w, r0, count, ws_.dequantise, stream_);
        void* target = y_fp32 ? static_cast<void*>(static_cast<float*>(y) + r0) : static_cast<void*>(static_cast<bf16*>(y) + r0);
        MWB_TRY(blas_->linear(x, x_stride, rows, ws_.dequantise, count, w.cols, target, y_fp32, y_stride));
    }
    return {};
}

Status CudaBackendImpl::run_linear(const DeviceLinear& w, const bf16* x, int64_t x_stride, int64_t rows, bf16* y, int64_t y_stride) {
    MWB_TRY(run_matrix(w.matrix, x, x_stride, rows, y, y_stride, false));
    if (w.bias) add_bias(y, y_stride, w.bias, rows, w.matrix.rows, stream_);
    return {};
}

Status CudaBackendImpl::mla_attention(int64_t layer, const DeviceMla& a, const MicroBatch& batch, int64_t splits,
                                      ForwardObserver* observer) {
    const MlaConfig& m = *config_.mla;
    const int64_t rows = batch.rows(), heads = config_.num_heads, nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim;
    const int64_t vdim = m.v_head_dim, lora = m.kv_lora_rank, qk = nope + rope, kv_head = nope + vdim, latent = lora + rope;
    const int64_t a_width = a.qkv_a.matrix.rows;
    const float scale = float(config_.attention_scale()), eps = float(config_.rms_norm_eps);
    bf16* cache = cache_layer(layer);
    const bool snapshot = observer && observer->wants_attention(layer);

    MWB_TRY(run_linear(a.qkv_a, ws_.h, config_.hidden_size, rows, ws_.qkv_a, a_width));
    bf16* kv_a = ws_.qkv_a + a.q_width;
    apply_rope(kv_a + lora, rows, a_width, 1, rope, ws_.positions, rope_, stream_);
    mla_write_cache(kv_a, a_width, a.kv_a_norm, eps, rows, lora, rope, ws_.slots, ws_.positions, cache, capacity_, stream_);
    bf16* q = ws_.qkv_a;
    int64_t q_stride = a_width;
    if (a.q_a_norm) {
        rms_norm(ws_.qkv_a, a_width, a.q_a_norm, rows, a.q_width, eps, ws_.q_a_normed, a.q_width, stream_);
        MWB_TRY(run_linear(a.q_b, ws_.q_a_normed, a.q_width, rows, ws_.q, heads * qk));
        q = ws_.q;
        q_stride = heads * qk;
    }
    apply_rope(q + nope, rows, q_stride, heads, qk, ws_.positions, rope_, stream_);

    const int64_t decode = batch.decode_rows;
    if (decode > 0) {
        // Absorbed decode: q_latent = W_UKᵀ·q_nope per head, attention over the latent cache, then W_UV.
        Blas::Batched absorb;
        absorb.m = lora, absorb.n = decode, absorb.k = nope;
        absorb.a = a.kv_b, absorb.lda = lora, absorb.stride_a = kv_head * lora;
        absorb.b = q, absorb.ldb = q_stride, absorb.stride_b = qk;
        absorb.c = ws_.q_cat, absorb.ldc = heads * latent, absorb.stride_c = latent;
        absorb.batch = heads;
        MWB_TRY(blas_->batched(absorb));
        mla_append_query_rope(q, q_stride, decode, heads, nope, rope, lora, ws_.q_cat, stream_);

        DecodeAttention d;
        d.q = ws_.q_cat, d.q_row_stride = heads * latent, d.q_head_stride = latent;
        d.cache = cache, d.capacity = capacity_, d.cache_row_stride = latent;
        d.key_dim = latent, d.value_dim = lora;
        d.heads = heads, d.heads_per_kv = heads, d.heads_per_block = decode_heads_per_block(heads);
        d.scale = scale, d.cache_slots = ws_.slots, d.positions = ws_.positions, d.rows = decode, d.splits = splits;
        d.partials = ws_.partials, d.out = ws_.o_latent, d.out_row_stride = heads * lora, d.out_head_stride = lora;
        decode_attention(d, stream_);

        Blas::Batched expand;
        expand.transpose_a = true;
        expand.m = vdim, expand.n = decode, expand.k = lora;
        expand.a = a.kv_b + nope * lora, expand.lda = lora, expand.stride_a = kv_head * lora;
        expand.b = ws_.o_latent, expand.ldb = heads * lora, expand.stride_b = lora;
        expand.c = ws_.attended, expand.ldc = heads * vdim, expand.stride_c = vdim;
        expand.batch = heads;
        MWB_TRY(blas_->batched(expand));
        if (snapshot) {
            ProbabilityQuery p;
            p.q = ws_.q_cat, p.q_row_stride = heads * latent, p.q_head_stride = latent;
            p.keys = cache, p.key_row_stride = latent, p.key_head_stride = 0, p.cache_slots = ws_.slots, p.capacity = capacity_;
            p.dim = latent, p.heads = heads, p.heads_per_kv = heads, p.scale = scale;
            MWB_TRY(deliver_attention(batch, 0, decode, layer, p, observer));
        }
    }

    for (const PrefillPiece& piece : batch.prefill) {
        // Prompt piece: expand per-head keys and values from the latents of every cached position.
        const int64_t end = piece.start_position + piece.token_count;
        const bf16* latents = cache + piece.slot * capacity_ * latent;
        MWB_TRY(blas_->linear(latents, latent, end, a.kv_b, heads * kv_head, lora, ws_.expanded, false, heads * kv_head));
        mla_assemble_keys(ws_.expanded, latents, end, heads, nope, vdim, lora, rope, ws_.keys, stream_);
        for (int64_t i0 = 0; i0 < piece.token_count; i0 += ws_.query_tile) {
            const int64_t count = std::min(ws_.query_tile, piece.token_count - i0);
            const int64_t keys = piece.start_position + i0 + count;  // what the tile's last query sees
            const bf16* q_tile = q + (piece.first_row + i0) * q_stride;
            Blas::Batched scores;
            scores.transpose_a = true;
            scores.m = keys, scores.n = count, scores.k = qk, scores.alpha = scale;
            scores.a = ws_.keys, scores.lda = heads * qk, scores.stride_a = qk;
            scores.b = q_tile, scores.ldb = q_stride, scores.stride_b = qk;
            scores.c = ws_.scores, scores.c_fp32 = true, scores.ldc = keys, scores.stride_c = count * keys;
            scores.batch = heads;
            MWB_TRY(blas_->batched(scores));
            causal_softmax(ws_.scores, ws_.probabilities, heads, count, keys, piece.start_position + i0, stream_);
            Blas::Batched values;
            values.m = vdim, values.n = count, values.k = keys;
            values.a = ws_.expanded + nope, values.lda = heads * kv_head, values.stride_a = kv_head;
            values.b = ws_.probabilities, values.ldb = keys, values.stride_b = count * keys;
            values.c = ws_.attended + (piece.first_row + i0) * heads * vdim, values.ldc = heads * vdim, values.stride_c = vdim;
            values.batch = heads;
            MWB_TRY(blas_->batched(values));
        }
        if (snapshot) {
            ProbabilityQuery p;
            p.q = q + piece.first_row * q_stride, p.q_row_stride = q_stride, p.q_head_stride = qk;
            p.keys = ws_.keys, p.key_row_stride = heads * qk, p.key_head_stride = qk;
            p.dim = qk, p.heads = heads, p.heads_per_kv = 1, p.scale = scale;
            MWB_TRY(deliver_attention(batch, piece.first_row, piece.token_count, layer, p, observer));
        }
    }
    return run_linear(a.o, ws_.attended, heads * vdim, rows, ws_.delta, config_.hidden_size);
}

Status CudaBackendImpl::gqa_attention(int64_t layer, const DeviceGqa& a, const MicroBatch& batch, int64_t splits,
                                      ForwardObserver* observer) {
    const int64_t rows = batch.rows(), heads = config_.num_heads, kv_heads = config_.num_kv_heads, dim = config_.head_dim;
    const int64_t group = heads / kv_heads, width = (heads + 2 * kv_heads) * dim, cache_row = 2 * kv_heads * dim;
    const float scale = float(config_.attention_scale());
    bf16* cache = cache_layer(layer);

    MWB_TRY(run_linear(a.qkv, ws_.h, config_.hidden_size, rows, ws_.qkv, width));
    apply_rope(ws_.qkv, rows, width, heads, dim, ws_.positions, rope_, stream_);
    apply_rope(ws_.qkv + heads * dim, rows, width, kv_heads, dim, ws_.positions, rope_, stream_);
    gqa_write_cache(ws_.qkv, width, rows, heads, kv_heads, dim, ws_.slots, ws_.positions, cache, capacity_, stream_);

    if (batch.decode_rows > 0) {
        DecodeAttention d;
        d.q = ws_.qkv, d.q_row_stride = width, d.q_head_stride = dim;
        d.cache = cache, d.capacity = capacity_, d.cache_row_stride = cache_row;
        d.key_offset = 0, d.value_offset = kv_heads * dim, d.kv_head_stride = dim;
        d.key_dim = dim, d.value_dim = dim;
        d.heads = heads, d.heads_per_kv = group, d.heads_per_block = decode_heads_per_block(group);
        d.scale = scale, d.cache_slots = ws_.slots, d.positions = ws_.positions, d.rows = batch.decode_rows, d.splits = splits;
        d.partials = ws_.partials, d.out = ws_.attended, d.out_row_stride = heads * dim, d.out_head_stride = dim;
        decode_attention(d, stream_);
    }
    for (const PrefillPiece& piece : batch.prefill) {
        const bf16* rows_of_slot = cache + piece.slot * capacity_ * cache_row;
        for (int64_t i0 = 0; i0 < piece.token_count; i0 += ws_.query_tile) {
            const int64_t count = std::min(ws_.query_tile, piece.token_count - i0);
            const int64_t keys = piece.start_position + i0 + count;
            // One strided batch per position inside a group: head h = kv·group + g reads KV head kv.
            for (int64_t g = 0; g < group; ++g) {
                Blas::Batched scores;
                scores.transpose_a = true;
                scores.m = keys, scores.n = count, scores.k = dim, scores.alpha = scale;
                scores.a = rows_of_slot, scores.lda = cache_row, scores.stride_a = dim;
                scores.b = ws_.qkv + (piece.first_row + i0) * width + g * dim, scores.ldb = width, scores.stride_b = group * dim;
                scores.c = ws_.scores + g * count * keys, scores.c_fp32 = true, scores.ldc = keys, scores.stride_c = group * count * keys;
                scores.batch = kv_heads;
                MWB_TRY(blas_->batched(scores));
            }
            causal_softmax(ws_.scores, ws_.probabilities, heads, count, keys, piece.start_position + i0, stream_);
            for (int64_t g = 0; g < group; ++g) {
                Blas::Batched values;
                values.m = dim, values.n = count, values.k = keys;
                values.a = rows_of_slot + kv_heads * dim, values.lda = cache_row, values.stride_a = dim;
                values.b = ws_.probabilities + g * count * keys, values.ldb = keys, values.stride_b = group * count * keys;
                values.c = ws_.attended + (piece.first_row + i0) * heads * dim + g * dim, values.ldc = heads * dim,
                values.stride_c = group * dim;
                values.batch = kv_heads;
                MWB_TRY(blas_->batched(values));
            }
        }
    }
    if (observer && observer->wants_attention(layer)) {
        ProbabilityQuery p;
        p.q = ws_.qkv, p.q_row_stride = width, p.q_head_stride = dim;
        p.keys = cache, p.key_row_stride = cache_row, p.key_head_stride = dim, p.cache_slots = ws_.slots, p.capacity = capacity_;
        p.dim = dim, p.heads = heads, p.heads_per_kv = group, p.scale = scale;
        MWB_TRY(deliver_attention(batch, 0, rows, layer, p, observer));
    }
    return run_linear(a.o, ws_.attended, heads * dim, rows, ws_.delta, config_.hidden_size);
}

Status CudaBackendImpl::mlp(const DeviceMlp& m, int64_t rows, bf16* out) {
    if (rows <= kGemvRows && fusable(m)) {
        FusedFeedForward f;
        f.tokens = rows, f.input = ws_.h, f.input_stride = config_.hidden_size;
        f.mlp_gate_up = m.gate_up.matrix, f.mlp_down = m.down.matrix, f.mlp_act = ws_.act;
        f.out = out, f.out_stride = config_.hidden_size;
        fused_feed_forward(f, stream_);
        return {};
    }
    MWB_TRY(run_linear(m.gate_up, ws_.h, config_.hidden_size, rows, ws_.gate_up, 2 * m.inner));
    swiglu(ws_.gate_up, rows, m.inner, ws_.act, stream_);
    return run_linear(m.down, ws_.act, m.inner, rows, out, config_.hidden_size);
}

Status CudaBackendImpl::moe(const DeviceMoe& m, const MicroBatch& batch) {
    const int64_t rows = batch.rows(), hidden = config_.hidden_size, experts = m.params.experts, k = m.params.top_k;
    const int64_t R = ws_.rows, inner = m.inner, dispatched = rows * k;
    float* logits = ws_.router_logits + m.record * R * experts;
    int32_t* chosen = ws_.routed_experts + m.record * R * k;
    float* weights = ws_.routed_weights + m.record * R * k;
    MWB_TRY(blas_->linear(ws_.h, hidden, rows, static_cast<const bf16*>(m.router.values), experts, hidden, logits, true, experts));
    route_tokens(logits, rows, m.params, chosen, weights, stream_);
    dispatch_by_expert(chosen, rows, k, experts, ws_.expert_offsets, ws_.active_experts, ws_.row_of_assignment, ws_.token_of_row,
                       stream_);

    if (rows <= kFusedFeedForwardTokens) {
        // Decode and short pieces: no host round trip, two launches for all experts (and the shared experts while
        // their weights are worth streaming per token; above kGemvRows rows a GEMM serves them better).
        FusedFeedForward f;
        f.tokens = rows, f.input = ws_.h, f.input_stride = hidden;
        f.experts_gate_up = m.experts_gate_up, f.experts_down = m.experts_down;
        f.n_experts = experts, f.top_k = k, f.max_active = std::min(experts, dispatched);
        f.offsets = ws_.expert_offsets, f.active = ws_.active_experts, f.token_of_row = ws_.token_of_row;
        f.row_of_assignment = ws_.row_of_assignment, f.weights = weights, f.expert_act = ws_.expert_act;
        if (m.has_shared && rows <= kGemvRows && fusable(m.shared)) {
            f.mlp_gate_up = m.shared.gate_up.matrix, f.mlp_down = m.shared.down.matrix, f.mlp_act = ws_.act;
        } else if (m.has_shared) {
            MWB_TRY(mlp(m.shared, rows, ws_.shared_out));
            f.addend = ws_.shared_out;
        }
        f.out = ws_.delta, f.out_stride = hidden;
        fused_feed_forward(f, stream_);
        return {};
    }
    // A prompt: one read-back of the expert offsets per layer, then one tensor-core GEMM per active expert.
    gather_dispatched(ws_.h, hidden, ws_.token_of_row, dispatched, ws_.dispatched, stream_);
    auto* offsets = pinned_offsets_.as<int32_t>();
    MWB_CUDA_TRY(cudaMemcpyAsync(offsets, ws_.expert_offsets, size_t(experts + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    const std::vector<int32_t> offset(offsets, offsets + experts + 1);
    auto expert_matrix = [](const DeviceMatrix& all, int64_t e) {
        DeviceMatrix one = all;
        const int64_t groups = (all.cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
        one.values = static_cast<const uint8_t*>(all.values) + size_t(e) * matrix_value_bytes(all.rows, all.cols, all.format);
        if (all.scales) one.scales = all.scales + e * all.rows * groups;
        return one;
    };
    for (int64_t e = 0; e < experts; ++e) {
        const int64_t first = offset[size_t(e)], count = offset[size_t(e + 1)] - first;
        if (count == 0) continue;
        MWB_TRY(run_matrix(expert_matrix(m.experts_gate_up, e), ws_.dispatched + first * hidden, hidden, count,
                           ws_.expert_gate_up + first * 2 * inner, 2 * inner, false));
    }
    swiglu(ws_.expert_gate_up, dispatched, inner, ws_.expert_act, stream_);
    for (int64_t e = 0; e < experts; ++e) {
        const int64_t first = offset[size_t(e)], count = offset[size_t(e + 1)] - first;
        if (count == 0) continue;
        MWB_TRY(run_matrix(expert_matrix(m.experts_down, e), ws_.expert_act + first * inner, inner, count,
                           ws_.expert_out + first * hidden, hidden, false));
    }
    if (m.has_shared) MWB_TRY(mlp(m.shared, rows, ws_.shared_out));
    combine_experts(ws_.expert_out, ws_.row_of_assignment, weights, rows, k, hidden, m.has_shared ? ws_.shared_out : nullptr,
                    ws_.delta, stream_);
    return {};
}

Status CudaBackendImpl::deliver_logits(const MicroBatch& batch, int64_t first, int64_t count, float* logits_host) {
    const size_t vocab = size_t(config_.vocab_size);
    MWB_CUDA_TRY(cudaMemcpyAsync(pinned_logits_.as<float>(), ws_.logits, size_t(count) * vocab * sizeof(float), cudaMemcpyDeviceToHost,
                                 stream_));
    MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    for (int64_t i = 0; i < count; ++i)
        std::memcpy(logits_host + size_t(batch.output_indices[size_t(first + i)]) * vocab, pinned_logits_.as<float>() + size_t(i) * vocab,
                    vocab * sizeof(float));
    return {};
}

Status CudaBackendImpl::deliver_routing(const MicroBatch& batch, ForwardObserver* observer) {
    if (model_.moe_layers == 0) return {};
    const int64_t rows = batch.rows(), R = ws_.rows, experts = config_.moe->n_routed_experts, k = config_.moe->experts_per_token;
    const size_t per_layer = size_t(rows) * (size_t(experts) * sizeof(float) + size_t(k) * (sizeof(int32_t) + sizeof(float)));
    MWB_TRY(pinned_records_.reserve(per_layer * size_t(model_.moe_layers)));
    auto* base = pinned_records_.as<uint8_t>();
    for (int64_t record = 0; record < model_.moe_layers; ++record) {
        uint8_t* target = base + size_t(record) * per_layer;
        MWB_CUDA_TRY(cudaMemcpyAsync(target, ws_.router_logits + record * R * experts, size_t(rows * experts) * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_));
        MWB_CUDA_TRY(cudaMemcpyAsync(target + size_t(rows * experts) * sizeof(float), ws_.routed_experts + record * R * k,
                                     size_t(rows * k) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
        MWB_CUDA_TRY(cudaMemcpyAsync(target + size_t(rows * experts) * sizeof(float) + size_t(rows * k) * sizeof(int32_t),
                                     ws_.routed_weights + record * R * k, size_t(rows * k) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
    MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    int64_t record = 0;
    for (int64_t l = 0; l < int64_t(model_.layers.size()); ++l) {
        if (!model_.layers[size_t(l)].moe) continue;
        const uint8_t* source = base + size_t(record++) * per_layer;
        const auto* logits = reinterpret_cast<const float*>(source);
        const auto* chosen = reinterpret_cast<const int32_t*>(logits + rows * experts);
        const auto* weights = reinterpret_cast<const float*>(chosen + rows * k);
        for (int64_t r = 0; r < rows; ++r)
            observer->on_routing(batch.cache_slots[size_t(r)], batch.positions[size_t(r)], l, {chosen + r * k, size_t(k)},
                                 {weights + r * k, size_t(k)}, {logits + r * experts, size_t(experts)});
    }
    return {};
}

Status CudaBackendImpl::deliver_hidden(const MicroBatch& batch, ForwardObserver* observer, int64_t index, bool normed) {
    const int64_t rows = batch.rows(), hidden = config_.hidden_size;
    std::vector<float> values(size_t(rows * hidden));
    if (normed) {
        std::vector<uint16_t> bits(values.size());
        MWB_CUDA_TRY(cudaMemcpyAsync(bits.data(), ws_.h, bits.size() * 2, cudaMemcpyDeviceToHost, stream_));
        MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
        for (size_t i = 0; i < bits.size(); ++i) values[i] = bf16_to_float(bits[i]);
    } else {
        MWB_CUDA_TRY(cudaMemcpyAsync(values.data(), ws_.x, values.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
        MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    }
    for (int64_t r = 0; r < rows; ++r)
        observer->on_hidden_state(batch.cache_slots[size_t(r)], batch.positions[size_t(r)], index, hidden, values.data() + r * hidden);
    return {};
}

Status CudaBackendImpl::deliver_attention(const MicroBatch& batch, int64_t first_row, int64_t rows, int64_t layer,
                                          const ProbabilityQuery& query, ForwardObserver* observer) {
    int64_t max_keys = 0;
    for (int64_t r = first_row; r < first_row + rows; ++r) max_keys = std::max<int64_t>(max_keys, batch.positions[size_t(r)] + 1);
    const size_t count = size_t(rows * query.heads * max_keys);
    DeviceMemory scratch;  // on demand only: the Inspector asked for this layer
    auto buffer = scratch.allocate(count * sizeof(float), "an attention snapshot");
    if (!buffer) return buffer.error();
    ProbabilityQuery q = query;
    if (q.cache_slots) q.cache_slots += first_row;
    attention_probabilities(q, rows, ws_.positions + first_row, max_keys, static_cast<float*>(*buffer), stream_);
    std::vector<float> host(count);
    MWB_CUDA_TRY(cudaMemcpyAsync(host.data(), *buffer, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
    std::vector<float> packed;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t position = batch.positions[size_t(first_row + r)], keys = position + 1;
        packed.resize(size_t(query.heads * keys));
        for (int64_t h = 0; h < query.heads; ++h)
            std::copy_n(host.data() + (r * query.heads + h) * max_keys, keys, packed.data() + h * keys);
        observer->on_attention(batch.cache_slots[size_t(first_row + r)], position, layer, query.heads, keys, packed.data());
    }
    return {};
}

}  // namespace
}  // namespace cuda

Result<std::unique_ptr<CudaBackend>> make_cuda_backend(std::shared_ptr<const ModelGraph> graph, const CudaOptions& options) {
    if (!graph) return make_error("no model to load");
    auto backend = std::make_unique<cuda::CudaBackendImpl>(std::move(graph), options);
    MWB_TRY(backend->initialise());
    return std::unique_ptr<CudaBackend>(std::move(backend));
}

}  // namespace mwb
