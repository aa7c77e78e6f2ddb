#include "kernels/device_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/io/dtype.h"
#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb::cuda {

Error cuda_error(cudaError_t error, const std::string& what) {
    return make_error("CUDA error: " + std::string(cudaGetErrorString(error)) + " (" + what + ")");
}

Result<void*> DeviceMemory::allocate(size_t bytes, const std::string& what) {
    void* pointer = nullptr;
    const cudaError_t status = cudaMalloc(&pointer, std::max<size_t>(bytes, 1));
    if (status != cudaSuccess) {
        cudaGetLastError();  // an allocation failure is not sticky; clear it so later calls see a clean state
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        return make_error("out of GPU memory: " + what + " needs " + describe_bytes(bytes) + ", " + describe_bytes(free_bytes) +
                          " of " + describe_bytes(total_bytes) + " free (" + cudaGetErrorString(status) + ")");
    }
    blocks_.push_back(pointer);
    bytes_ += bytes;
    return pointer;
}

void DeviceMemory::release() {
    for (void* block : blocks_) cudaFree(block);
    blocks_.clear();
    bytes_ = 0;
}

Status check_cuda_support(const ModelConfig& c) {
    auto multiple_of_8 = [](int64_t v) { return v % 8 == 0; };
    std::vector<std::pair<const char*, int64_t>> dims = {{"hidden_size", c.hidden_size}};
    bool any_dense = false;
    for (int64_t l = 0; l < c.num_layers; ++l) any_dense |= !c.is_moe_layer(l);
    if (any_dense) dims.push_back({"intermediate_size", c.intermediate_size});
    if (c.mla) {
        dims.push_back({"kv_lora_rank", c.mla->kv_lora_rank});
        dims.push_back({"qk_rope_head_dim", c.mla->qk_rope_head_dim});
        dims.push_back({"qk_nope_head_dim", c.mla->qk_nope_head_dim});
        dims.push_back({"v_head_dim", c.mla->v_head_dim});
        if (c.mla->q_lora_rank) dims.push_back({"q_lora_rank", *c.mla->q_lora_rank});
        const int64_t latent = c.mla->kv_lora_rank + c.mla->qk_rope_head_dim;
        if (latent % 16 || latent > kMaxDecodeKeyDim || c.mla->kv_lora_rank % 16 || c.mla->kv_lora_rank > kMaxDecodeValueDim)
            return make_error("the CUDA decode attention needs kv_lora_rank (" + std::to_string(c.mla->kv_lora_rank) + ") and kv_lora_rank + qk_rope_head_dim (" +
                              std::to_string(latent) + ") to be multiples of 16, at most " + std::to_string(kMaxDecodeValueDim) + " and " +
                              std::to_string(kMaxDecodeKeyDim));
    } else {
        dims.push_back({"head_dim", c.head_dim});
        if (c.head_dim % 16 || c.head_dim > kMaxDecodeValueDim)
            return make_error("the CUDA decode attention needs head_dim (" + std::to_string(c.head_dim) + ") to be a multiple of 16, at most " +
                              std::to_string(kMaxDecodeValueDim));
    }
    if (c.moe) {
        dims.push_back({"moe_intermediate_size", c.moe->moe_intermediate_size});
        const MoeConfig& m = *c.moe;
        if (m.experts_per_token > 32 || m.n_group > 32 || m.n_routed_experts > 4096 || m.n_routed_experts % std::max<int64_t>(m.n_group, 1))
            return make_error("the CUDA router supports at most 32 experts per token, 32 groups, 4096 experts, equal groups");
    }
    for (const auto& [name, value] : dims)
        if (!multiple_of_8(value))
            return make_error(std::string("the CUDA backend needs ") + name + " to be a multiple of 8 (it is " + std::to_string(value) + ")");
    return {};
}

namespace {

constexpr size_t kChunkElements = size_t(16) << 20;  // weights convert on the host this many values at a time

// A device buffer for one chunk of bf16 rows on their way to a quantised format; freed on every path.
struct Staging {
    bf16* buffer = nullptr;
    size_t bytes = 0;
    ~Staging() {
        if (buffer) cudaFree(buffer);
    }
    Status reserve(size_t wanted) {
        if (wanted <= bytes) return {};
        if (buffer) cudaFree(buffer);
        buffer = nullptr;
        bytes = 0;
        const cudaError_t status = cudaMalloc(&buffer, wanted);
        if (status != cudaSuccess) {
            cudaGetLastError();
            buffer = nullptr;
            return make_error("out of GPU memory: weight staging needs " + describe_bytes(wanted));
        }
        bytes = wanted;
        return {};
    }
};

class Uploader {
public:
    Uploader(DeviceMemory& memory, cudaStream_t stream, WeightQuantisation quantisation)
        : memory_(memory), stream_(stream), quantisation_(quantisation) {}

    // The rows of `parts` stacked into one matrix (all parts read the same input).
    Result<DeviceLinear> stacked(const std::vector<const LinearWeight*>& parts, const std::string& name, bool force_bf16 = false) {
        const int64_t cols = parts.front()->in_features;
        int64_t rows = 0;
        bool all_fp8 = true, any_bias = false;
        for (const LinearWeight* p : parts) {
            if (p->in_features != cols) return make_error(name + ": stacked projections disagree on their input width");
            rows += p->out_features;
            all_fp8 &= p->weight.dtype == DType::F8_E4M3 && p->block_cols % kScaleGroupColumns == 0;
            any_bias |= p->bias.has_value();
        }
        WeightFormat format = WeightFormat::BF16;
        if (!force_bf16 && all_fp8) format = WeightFormat::FP8;
        else if (!force_bf16 && quantisation_ == WeightQuantisation::Int8) format = WeightFormat::INT8;
        else if (!force_bf16 && quantisation_ == WeightQuantisation::Int4) format = WeightFormat::INT4;
        auto matrix = allocate_matrix(rows, cols, format, name);
        if (!matrix) return matrix.error();
        DeviceLinear linear{*matrix, nullptr};
        const bool quantised = format == WeightFormat::INT8 || format == WeightFormat::INT4;
        if (quantised) {
            MWB_TRY(error_sums_.reserve(2 * sizeof(float)));
            MWB_CUDA_TRY(cudaMemsetAsync(error_sums_.buffer, 0, 2 * sizeof(float), stream_));
        }
        int64_t offset = 0;
        for (const LinearWeight* p : parts) {
            MWB_TRY(write_rows(*p, linear.matrix, offset));
            offset += p->out_features;
        }
        if (quantised) MWB_TRY(check_quantisation(name));
        if (any_bias) {
            std::vector<float> bias(size_t(rows), 0.0f);
            offset = 0;
            for (const LinearWeight* p : parts) {
                if (p->bias) convert_to_float(p->bias->dtype, p->bias->data, bias.data() + offset, size_t(p->out_features));
                offset += p->out_features;
            }
            auto device_bias = floats(bias, name + " bias");
            if (!device_bias) return device_bias.error();
            linear.bias = *device_bias;
        }
        note_scratch(linear.matrix, rows);
        return linear;
    }

    // Every expert's [gate | up] (or down) back to back in one allocation.
    Result<DeviceMatrix> experts(const std::vector<MlpWeights>& experts, bool gate_up, const std::string& name) {
        std::vector<const LinearWeight*> parts;
        for (const MlpWeights& e : experts) {
            if (gate_up) {
                parts.push_back(&e.gate_proj);
                parts.push_back(&e.up_proj);
            } else {
                parts.push_back(&e.down_proj);
            }
        }
        auto stack = stacked(parts, name);
        if (!stack) return stack.error();
        DeviceMatrix matrix = stack->matrix;
        matrix.rows /= int64_t(experts.size());  // one expert's matrix; the kernels step by rows·cols per expert
        note_scratch(matrix, matrix.rows);
        return matrix;
    }

    Result<const float*> vector(const TensorView& tensor, const std::string& name) {
        std::vector<float> values(size_t(tensor.numel()));
        convert_to_float(tensor.dtype, tensor.data, values.data(), values.size());
        return floats(values, name);
    }

    Result<const float*> floats(const std::vector<float>& values, const std::string& name) {
        auto pointer = memory_.allocate(values.size() * sizeof(float), name);
        if (!pointer) return pointer.error();
        MWB_CUDA_TRY(cudaMemcpy(*pointer, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice));
        return static_cast<const float*>(*pointer);
    }

    size_t scratch_bytes() const { return scratch_bytes_; }
    const QuantisationError& worst_error() const { return worst_; }

private:
    Result<DeviceMatrix> allocate_matrix(int64_t rows, int64_t cols, WeightFormat format, const std::string& name) {
        const size_t value_bytes = matrix_value_bytes(rows, cols, format);
        const size_t total = device_linear_bytes(rows, cols, format);
        auto pointer = memory_.allocate(total, name);
        if (!pointer) return pointer.error();
        DeviceMatrix m;
        m.values = *pointer;
        m.scales = format == WeightFormat::BF16 ? nullptr : reinterpret_cast<const float*>(static_cast<uint8_t*>(*pointer) + value_bytes);
        m.format = format;
        m.rows = rows;
        m.cols = cols;
        return m;
    }

    // Rows of one checkpoint weight into `target` starting at row `offset`.
    Status write_rows(const LinearWeight& part, const DeviceMatrix& target, int64_t offset) {
        const int64_t cols = target.cols, groups = (cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
        auto* values = static_cast<uint8_t*>(const_cast<void*>(target.values));
        auto* scales = const_cast<float*>(target.scales);
        if (target.format == WeightFormat::FP8) {
            MWB_CUDA_TRY(cudaMemcpy(values + size_t(offset * cols), part.weight.data, size_t(part.out_features * cols), cudaMemcpyHostToDevice));
            const auto* block = reinterpret_cast<const float*>(part.block_scale->data);
            const int64_t block_columns = part.block_scale->shape[1];
            std::vector<float> expanded(size_t(part.out_features * groups));
            for (int64_t r = 0; r < part.out_features; ++r)
                for (int64_t g = 0; g < groups; ++g)
                    expanded[size_t(r * groups + g)] = block[(r / part.block_rows) * block_columns + (g * kScaleGroupColumns) / part.block_cols];
            MWB_CUDA_TRY(cudaMemcpy(scales + offset * groups, expanded.data(), expanded.size() * sizeof(float), cudaMemcpyHostToDevice));
            return {};
        }
        const int64_t chunk_rows = std::max<int64_t>(1, int64_t(kChunkElements) / cols);
        std::vector<float> decoded;
        std::vector<uint16_t> half;
        for (int64_t r0 = 0; r0 < part.out_features; r0 += chunk_rows) {
            const int64_t count = std::min(chunk_rows, part.out_features - r0);
            decoded.resize(size_t(count * cols));
            half.resize(decoded.size());
            cpu::decode_rows(part, r0, count, decoded.data());
            for (size_t i = 0; i < decoded.size(); ++i) half[i] = float_to_bf16(decoded[i]);
            if (target.format == WeightFormat::BF16) {
                MWB_CUDA_TRY(cudaMemcpy(values + size_t((offset + r0) * cols) * 2, half.data(), half.size() * 2, cudaMemcpyHostToDevice));
            } else {
                MWB_TRY(staging_.reserve(half.size() * 2));
                MWB_CUDA_TRY(cudaMemcpyAsync(staging_.buffer, half.data(), half.size() * 2, cudaMemcpyHostToDevice, stream_));
                quantize_weights(staging_.buffer, count, cols, target.format, values + matrix_value_bytes(offset + r0, cols, target.format),
                                 scales + (offset + r0) * groups, reinterpret_cast<float*>(error_sums_.buffer), stream_);
                MWB_CUDA_TRY(cudaGetLastError());
                MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
            }
        }
        return {};
    }

    // The relative error ‖W − Ŵ‖ / ‖W‖ of the matrix just quantised: non-finite weights fail the load, the
    // largest error is kept for the report.
    Status check_quantisation(const std::string& name) {
        float sums[2] = {0, 0};
        MWB_CUDA_TRY(cudaMemcpyAsync(sums, error_sums_.buffer, sizeof sums, cudaMemcpyDeviceToHost, stream_));
        MWB_CUDA_TRY(cudaStreamSynchronize(stream_));
        const double error = sums[1] > 0 ? std::sqrt(double(sums[0]) / double(sums[1])) : 0.0;
        if (!std::isfinite(error))
            return make_error(name + " holds values that are not finite numbers (NaN or infinity); it cannot be quantised");
        if (error > worst_.relative_error) worst_ = {error, name};
        return {};
    }

    void note_scratch(const DeviceMatrix& m, int64_t rows) {
        if (m.format == WeightFormat::BF16) return;
        constexpr size_t kDenseChunk = size_t(64) << 20;
        scratch_bytes_ = std::max(scratch_bytes_, std::min(kDenseChunk, size_t(rows) * size_t(m.cols) * 2));
    }

    DeviceMemory& memory_;
    cudaStream_t stream_;
    WeightQuantisation quantisation_;
    Staging staging_;
    Staging error_sums_;
    QuantisationError worst_;
    size_t scratch_bytes_ = 0;
};

}  // namespace

RouterParams router_params(const MoeConfig& m) {
    RouterParams p;
    p.experts = m.n_routed_experts;
    p.top_k = m.experts_per_token;
    p.groups = m.n_group;
    p.top_groups = m.topk_group;
    p.sigmoid = m.scoring == ScoringFunction::Sigmoid;
    p.group_limited = m.topk_method != TopkMethod::Greedy && m.n_group > 1;
    p.group_by_top_two = m.topk_method == TopkMethod::NoAuxTc;
    p.normalise = m.norm_topk_prob;
    p.scaling = float(m.routed_scaling_factor);
    return p;
}

Result<DeviceModel> upload_model(const ModelGraph& graph, WeightQuantisation quantisation, DeviceMemory& memory, cudaStream_t stream) {
    Uploader up(memory, stream, quantisation);
    DeviceModel model;

    auto embedding = up.stacked({&graph.embed_tokens}, "the embedding table", true);
    if (!embedding) return embedding.error();
    model.embedding = static_cast<const bf16*>(embedding->matrix.values);

    auto mlp = [&](const MlpWeights& w, const std::string& name) -> Result<DeviceMlp> {
        DeviceMlp m;
        m.inner = w.gate_proj.out_features;
        auto gate_up = up.stacked({&w.gate_proj, &w.up_proj}, name + " gate/up");
        if (!gate_up) return gate_up.error();
        auto down = up.stacked({&w.down_proj}, name + " down");
        if (!down) return down.error();
        m.gate_up = *gate_up;
        m.down = *down;
        return m;
    };

    for (size_t l = 0; l < graph.layers.size(); ++l) {
        const DecoderLayer& layer = graph.layers[l];
        const std::string name = "layer " + std::to_string(l);
        DeviceLayer d;
        auto input_norm = up.vector(layer.input_norm.weight, name + " input norm");
        if (!input_norm) return input_norm.error();
        auto post_norm = up.vector(layer.post_attention_norm.weight, name + " post-attention norm");
        if (!post_norm) return post_norm.error();
        d.input_norm = *input_norm;
        d.post_attention_norm = *post_norm;

        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
            d.mla = true;
            DeviceMla& a = d.attention_mla;
            const LinearWeight& q_first = mla->q_proj ? *mla->q_proj : *mla->q_a_proj;
            a.q_width = q_first.out_features;
            auto qkv_a = up.stacked({&q_first, &mla->kv_a_proj}, name + " q/kv down-projection");
            if (!qkv_a) return qkv_a.error();
            a.qkv_a = *qkv_a;
            if (mla->q_a_norm) {
                auto norm = up.vector(mla->q_a_norm->weight, name + " q_a norm");
                if (!norm) return norm.error();
                a.q_a_norm = *norm;
                auto q_b = up.stacked({&*mla->q_b_proj}, name + " q_b_proj");
                if (!q_b) return q_b.error();
                a.q_b = *q_b;
            }
            auto kv_norm = up.vector(mla->kv_a_norm.weight, name + " kv_a norm");
            if (!kv_norm) return kv_norm.error();
            a.kv_a_norm = *kv_norm;
            auto kv_b = up.stacked({&mla->kv_b_proj}, name + " kv_b_proj", true);
            if (!kv_b) return kv_b.error();
            a.kv_b = static_cast<const bf16*>(kv_b->matrix.values);
            auto o = up.stacked({&mla->o_proj}, name + " o_proj");
            if (!o) return o.error();
            a.o = *o;
        } else {
            const auto& gqa = std::get<GqaWeights>(layer.attention);
            auto qkv = up.stacked({&gqa.q_proj, &gqa.k_proj, &gqa.v_proj}, name + " q/k/v");
            if (!qkv) return qkv.error();
            auto o = up.stacked({&gqa.o_proj}, name + " o_proj");
            if (!o) return o.error();
            d.attention_gqa = {*qkv, *o};
        }

        if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) {
            d.moe = true;
            DeviceMoe& m = d.experts;
            m.params = router_params(moe->config);
            m.inner = moe->config.moe_intermediate_size;
            m.record = model.moe_layers++;
            auto router = up.stacked({&moe->router}, name + " router", true);
            if (!router) return router.error();
            m.router = router->matrix;
            if (moe->score_bias) {
                auto bias = up.vector(moe->score_bias->weight, name + " router bias");
                if (!bias) return bias.error();
                m.params.bias = *bias;
            }
            auto gate_up = up.experts(moe->experts, true, name + " experts gate/up");
            if (!gate_up) return gate_up.error();
            auto down = up.experts(moe->experts, false, name + " experts down");
            if (!down) return down.error();
            m.experts_gate_up = *gate_up;
            m.experts_down = *down;
            if (moe->shared) {
                auto shared = mlp(*moe->shared, name + " shared experts");
                if (!shared) return shared.error();
                m.has_shared = true;
                m.shared = *shared;
            }
        } else {
            auto dense = mlp(std::get<MlpWeights>(layer.feed_forward), name + " MLP");
            if (!dense) return dense.error();
            d.mlp = *dense;
        }
        model.layers.push_back(d);
    }

    auto final_norm = up.vector(graph.final_norm.weight, "the final norm");
    if (!final_norm) return final_norm.error();
    model.final_norm = *final_norm;
    if (graph.lm_head.weight.data == graph.embed_tokens.weight.data) {
        model.lm_head = *embedding;
    } else {
        auto head = up.stacked({&graph.lm_head}, "lm_head");
        if (!head) return head.error();
        model.lm_head = *head;
    }
    auto frequencies = up.floats(graph.rope.inverse_frequency, "rope frequencies");
    if (!frequencies) return frequencies.error();
    model.rope_inverse_frequency = *frequencies;
    model.dequantise_scratch_bytes = up.scratch_bytes();
    model.worst_quantisation_error = up.worst_error();
    return model;
}

}  // namespace mwb::cuda
