#include "kernels/device_adapter.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "engine/io/dtype.h"

namespace mwb::cuda {

namespace {

// Where a weight of the graph went on the device.
struct Placement {
    const DeviceMatrix* matrix = nullptr;
    int64_t expert = -1;
    int64_t row_offset = 0;
    const DeviceMla* kv_b_of = nullptr;  // kv_b_proj: folded into a copy instead
    std::string name;
};

void place_mlp(const MlpWeights& w, const DeviceMatrix& gate_up, const DeviceMatrix& down, int64_t expert, const std::string& name,
               std::unordered_map<const LinearWeight*, Placement>& out) {
    out[&w.gate_proj] = {&gate_up, expert, 0, nullptr, name + ".gate_proj"};
    out[&w.up_proj] = {&gate_up, expert, w.gate_proj.out_features, nullptr, name + ".up_proj"};
    out[&w.down_proj] = {&down, expert, 0, nullptr, name + ".down_proj"};
}

std::unordered_map<const LinearWeight*, Placement> placements(const ModelGraph& graph, const DeviceModel& model) {
    std::unordered_map<const LinearWeight*, Placement> out;
    for (size_t l = 0; l < graph.layers.size(); ++l) {
        const DecoderLayer& layer = graph.layers[l];
        const DeviceLayer& device = model.layers[l];
        const std::string name = "model.layers." + std::to_string(l);
        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
            const DeviceMla& a = device.attention_mla;
            const std::string p = name + ".self_attn";
            if (mla->q_proj) out[&*mla->q_proj] = {&a.qkv_a.matrix, -1, 0, nullptr, p + ".q_proj"};
            if (mla->q_a_proj) out[&*mla->q_a_proj] = {&a.qkv_a.matrix, -1, 0, nullptr, p + ".q_a_proj"};
            if (mla->q_b_proj) out[&*mla->q_b_proj] = {&a.q_b.matrix, -1, 0, nullptr, p + ".q_b_proj"};
            out[&mla->kv_a_proj] = {&a.qkv_a.matrix, -1, a.q_width, nullptr, p + ".kv_a_proj_with_mqa"};
            out[&mla->kv_b_proj] = {nullptr, -1, 0, &a, p + ".kv_b_proj"};
            out[&mla->o_proj] = {&a.o.matrix, -1, 0, nullptr, p + ".o_proj"};
        } else {
            const auto& gqa = std::get<GqaWeights>(layer.attention);
            const DeviceGqa& a = device.attention_gqa;
            const std::string p = name + ".self_attn";
            out[&gqa.q_proj] = {&a.qkv.matrix, -1, 0, nullptr, p + ".q_proj"};
            out[&gqa.k_proj] = {&a.qkv.matrix, -1, gqa.q_proj.out_features, nullptr, p + ".k_proj"};
            out[&gqa.v_proj] = {&a.qkv.matrix, -1, gqa.q_proj.out_features + gqa.k_proj.out_features, nullptr, p + ".v_proj"};
            out[&gqa.o_proj] = {&a.o.matrix, -1, 0, nullptr, p + ".o_proj"};
        }
        if (const auto* mlp = std::get_if<MlpWeights>(&layer.feed_forward)) {
            place_mlp(*mlp, device.mlp.gate_up.matrix, device.mlp.down.matrix, -1, name + ".mlp", out);
        } else {
            const auto& moe = std::get<MoeWeights>(layer.feed_forward);
            const DeviceMoe& m = device.experts;
            for (size_t e = 0; e < moe.experts.size(); ++e)
                place_mlp(moe.experts[e], m.experts_gate_up, m.experts_down, int64_t(e), name + ".mlp.experts." + std::to_string(e), out);
            if (moe.shared) place_mlp(*moe.shared, m.shared.gate_up.matrix, m.shared.down.matrix, -1, name + ".mlp.shared_experts", out);
        }
    }
    return out;
}

// What a weight the device adapter cannot place is, for the message.
std::string unplaceable_name(const ModelGraph& graph, const LinearWeight* weight) {
    if (weight == &graph.lm_head) return "lm_head";
    if (weight == &graph.embed_tokens) return "the embedding table";
    for (size_t l = 0; l < graph.layers.size(); ++l)
        if (const auto* moe = std::get_if<MoeWeights>(&graph.layers[l].feed_forward); moe && weight == &moe->router)
            return "the router of layer " + std::to_string(l);
    return "a weight that is not part of this model";
}

}  // namespace

Result<std::unique_ptr<DeviceAdapter>> DeviceAdapter::upload(const ModelGraph& graph, const DeviceModel& model, const LowRankDeltas& deltas,
                                                              int64_t max_rows, Blas& blas, cudaStream_t stream) {
    std::unique_ptr<DeviceAdapter> adapter(new DeviceAdapter());
    const auto placed = placements(graph, model);
    int64_t max_rank = 0;
    std::vector<uint16_t> half;
    auto upload_bf16 = [&](const std::vector<float>& values, const std::string& what) -> Result<const bf16*> {
        half.resize(values.size());
        std::transform(values.begin(), values.end(), half.begin(), float_to_bf16);
        auto memory = adapter->memory_.allocate(half.size() * 2, what);
        if (!memory) return memory.error();
        MWB_CUDA_TRY(cudaMemcpy(*memory, half.data(), half.size() * 2, cudaMemcpyHostToDevice));
        return static_cast<const bf16*>(*memory);
    };

    for (const auto& [weight, delta] : deltas) {
        auto where = placed.find(weight);
        if (where == placed.end())
            return make_error("the adapter changes " + unplaceable_name(graph, weight) + ", which LoRA on the CUDA backend does not cover");
        const Placement& p = where->second;
        const int64_t in = weight->in_features, out = weight->out_features;
        if (delta.rank <= 0 || delta.a.size() != size_t(delta.rank * in) || delta.b.size() != size_t(out * delta.rank))
            return make_error("the adapter's matrices for " + p.name + " do not have the shapes [" + std::to_string(delta.rank) + ", " +
                              std::to_string(in) + "] and [" + std::to_string(out) + ", " + std::to_string(delta.rank) + "]");
        auto a = upload_bf16(delta.a, "the adapter's " + p.name + " A");
        if (!a) return a.error();
        auto b = upload_bf16(delta.b, "the adapter's " + p.name + " B");
        if (!b) return b.error();
        if (p.kv_b_of) {
            // The adapted copy: W (bf16 on the device) + scale·B·A, as column-major W'ᵀ[in][out] += A'ᵀ·B'ᵀ.
            const size_t bytes = size_t(out * in) * 2;
            auto copy = adapter->memory_.allocate(bytes, "the adapted " + p.name);
            if (!copy) return copy.error();
            MWB_CUDA_TRY(cudaMemcpyAsync(*copy, p.kv_b_of->kv_b, bytes, cudaMemcpyDeviceToDevice, stream));
            Blas::Batched fold;
            fold.accumulate = true;
            fold.m = in, fold.n = out, fold.k = delta.rank, fold.alpha = delta.scale;
            fold.a = *a, fold.lda = in;
            fold.b = *b, fold.ldb = delta.rank;
            fold.c = *copy, fold.ldc = in;
            MWB_TRY(blas.batched(fold));
            adapter->kv_b_[p.kv_b_of] = static_cast<const bf16*>(*copy);
            continue;
        }
        adapter->terms_[{p.matrix, p.expert}].push_back({*a, *b, delta.rank, in, out, p.row_offset, delta.scale});
        adapter->adapted_.insert(p.matrix);
        max_rank = std::max(max_rank, delta.rank);
    }
    if (max_rank > 0) {
        auto scratch = adapter->memory_.allocate(size_t(max_rows * max_rank) * 2, "the adapter's scratch");
        if (!scratch) return scratch.error();
        adapter->scratch_ = static_cast<bf16*>(*scratch);
    }
    adapter->max_rows_ = max_rows;
    MWB_CUDA_TRY(cudaStreamSynchronize(stream));
    return adapter;
}

const std::vector<LowRankTerm>* DeviceAdapter::terms(const DeviceMatrix& matrix, int64_t expert) const {
    auto found = terms_.find({&matrix, expert});
    return found == terms_.end() ? nullptr : &found->second;
}

const bf16* DeviceAdapter::kv_b(const DeviceMla& attention) const {
    auto found = kv_b_.find(&attention);
    return found == kv_b_.end() ? attention.kv_b : found->second;
}

Status DeviceAdapter::apply(Blas& blas, const DeviceMatrix& matrix, int64_t expert, const bf16* x, int64_t x_stride, int64_t rows,
                            bf16* y, int64_t y_stride) const {
    const std::vector<LowRankTerm>* list = terms(matrix, expert);
    if (!list || rows <= 0) return {};
    if (rows > max_rows_) return make_error("the adapter's scratch holds " + std::to_string(max_rows_) + " rows, not " + std::to_string(rows));
    for (const LowRankTerm& t : *list) {
        MWB_TRY(blas.linear(x, x_stride, rows, t.a, t.rank, t.in, scratch_, false, t.rank));
        MWB_TRY(blas.linear(scratch_, t.rank, rows, t.b, t.out, t.rank, y + t.row_offset, false, y_stride, t.scale, true));
    }
    return {};
}

}  // namespace mwb::cuda
