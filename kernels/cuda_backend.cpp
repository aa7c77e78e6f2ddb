// The CUDA backend: weights uploaded once, a KV cache and a bounded workspace per reserve_cache(), and a forward
// pass that enqueues the kernels of kernels.h and cuBLAS GEMMs on one stream. Decode steps (one token per
// sequence, no observer that needs intermediate tensors) are captured once per (batch, split count) as CUDA graphs
// and replayed; the only host synchronisation per step is the read-back of the logits or the sampled ids.
// The layers' launches are in cuda_layers.cpp, the observers' copies in cuda_observe.cpp.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cuda_backend_impl.h"

namespace mwb {
namespace cuda {

static_assert(sizeof(DeviceSamplingParams) == kSamplingParamBytes);

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
    adapters_.clear();  // their scratch is sized by the micro-batch rows, which change here
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

Result<const DeviceAdapter*> CudaBackendImpl::device_adapter(const LowRankDeltas& deltas) {
    ++adapter_uses_;
    for (CachedAdapter& cached : adapters_)
        if (cached.identity == deltas.identity()) {
            cached.last_use = adapter_uses_;
            return cached.adapter.get();
        }
    if (!adapters_.empty() && adapters_.size() >= std::max<size_t>(options_.cached_adapters, 1)) {
        MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
        adapters_.erase(std::min_element(adapters_.begin(), adapters_.end(),
                                         [](const CachedAdapter& a, const CachedAdapter& b) { return a.last_use < b.last_use; }));
    }
    auto uploaded = DeviceAdapter::upload(*graph_, model_, deltas, ws_.rows, *blas_, stream_);
    if (!uploaded) return uploaded.error();
    adapters_.push_back({deltas.identity(), adapter_uses_, std::move(uploaded.value())});
    return adapters_.back().adapter.get();
}

Status CudaBackendImpl::bind_inputs(const ForwardBatch& batch) {
    adapter_ = nullptr;
    overrides_ = nullptr;
    if (batch.adapter && !batch.adapter->empty()) {
        auto adapter = device_adapter(*batch.adapter);
        if (!adapter) return adapter.error();
        adapter_ = *adapter;
    }
    if (!batch.embedding_overrides.empty()) {
        MWB_TRY(check_embedding_overrides(batch.embedding_overrides, int64_t(batch.tokens.size()), config_.hidden_size));
        overrides_ = &batch.embedding_overrides;
        override_of_row_.assign(batch.tokens.size(), -1);
        for (size_t i = 0; i < overrides_->rows.size(); ++i) override_of_row_[size_t(overrides_->rows[i])] = int64_t(i);
    }
    return {};
}

Status CudaBackendImpl::write_embedding_overrides(const MicroBatch& batch) {
    // Image features are runs of consecutive rows: one copy per run.
    const int64_t hidden = config_.hidden_size, rows = batch.rows();
    for (int64_t r = 0; r < rows;) {
        const int64_t first = override_of_row_[size_t(batch.batch_rows[size_t(r)])];
        if (first < 0) {
            ++r;
            continue;
        }
        int64_t run = 1;
        while (r + run < rows && override_of_row_[size_t(batch.batch_rows[size_t(r + run)])] == first + run) ++run;
        MWB_CUDA_TRY(cudaMemcpyAsync(ws_.x + r * hidden, overrides_->values.data() + first * hidden, size_t(run * hidden) * sizeof(float),
                                     cudaMemcpyHostToDevice, stream_));
        r += run;
    }
    return {};
}

Result<std::vector<float>> CudaBackendImpl::forward(const ForwardBatch& batch, ForwardObserver* observer) {
    if (slots_ == 0) return make_error("reserve the KV cache before running the model");
    MWB_TRY(bind_inputs(batch));
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
    MWB_TRY(bind_inputs(batch));
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
    if (overrides_) MWB_TRY(write_embedding_overrides(batch));
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
    if (adapter_) MWB_TRY(adapter_->apply(*blas_, w.matrix, -1, x, x_stride, rows, y, y_stride));
    return {};
}

}  // namespace cuda

Result<std::unique_ptr<CudaBackend>> make_cuda_backend(std::shared_ptr<const ModelGraph> graph, const CudaOptions& options) {
    if (!graph) return make_error("no model to load");
    auto backend = std::make_unique<cuda::CudaBackendImpl>(std::move(graph), options);
    MWB_TRY(backend->initialise());
    return std::unique_ptr<CudaBackend>(std::move(backend));
}

}  // namespace mwb
