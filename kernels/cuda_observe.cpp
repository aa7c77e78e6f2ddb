// What the CUDA backend hands its observers, copied off the device after (or, for hidden states and attention,
// during) a forward pass: logits, routing decisions, hidden states, attention probabilities.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/io/dtype.h"
#include "kernels/cuda_backend_impl.h"

namespace mwb::cuda {

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

}  // namespace mwb::cuda
