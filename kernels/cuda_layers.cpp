// The layers of the CUDA forward pass as kernel and GEMM launches: MLA attention (absorbed decode over the latent
// cache, expanded keys and values for prompts), GQA attention, the dense MLP and the MoE block (fused decode
// kernels for few rows, one GEMM per active expert for prompts and under a LoRA adapter on the experts).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cuda_backend_impl.h"

namespace mwb::cuda {

Status CudaBackendImpl::mla_attention(int64_t layer, const DeviceMla& a, const MicroBatch& batch, int64_t splits,
                                      ForwardObserver* observer) {
    const MlaConfig& m = *config_.mla;
    const int64_t rows = batch.rows(), heads = config_.num_heads, nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim;
    const int64_t vdim = m.v_head_dim, lora = m.kv_lora_rank, qk = nope + rope, kv_head = nope + vdim, latent = lora + rope;
    const int64_t a_width = a.qkv_a.matrix.rows;
    const float scale = float(config_.attention_scale()), eps = float(config_.rms_norm_eps);
    bf16* cache = cache_layer(layer);
    const bool snapshot = observer && observer->wants_attention(layer);
    const bf16* kv_b = adapter_ ? adapter_->kv_b(a) : a.kv_b;

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
        absorb.a = kv_b, absorb.lda = lora, absorb.stride_a = kv_head * lora;
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
        expand.a = kv_b + nope * lora, expand.lda = lora, expand.stride_a = kv_head * lora;
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
        MWB_TRY(blas_->linear(latents, latent, end, kv_b, heads * kv_head, lora, ws_.expanded, false, heads * kv_head));
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

    const bool adapted_experts = adapter_ && (adapter_->adapts(m.experts_gate_up) || adapter_->adapts(m.experts_down));
    if (rows <= kFusedFeedForwardTokens && !adapted_experts) {
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
    // A prompt (or an adapter on the experts): one read-back of the expert offsets per layer, then one tensor-core GEMM per active expert.
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
        if (adapter_)
            MWB_TRY(adapter_->apply(*blas_, m.experts_gate_up, e, ws_.dispatched + first * hidden, hidden, count,
                                    ws_.expert_gate_up + first * 2 * inner, 2 * inner));
    }
    swiglu(ws_.expert_gate_up, dispatched, inner, ws_.expert_act, stream_);
    for (int64_t e = 0; e < experts; ++e) {
        const int64_t first = offset[size_t(e)], count = offset[size_t(e + 1)] - first;
        if (count == 0) continue;
        MWB_TRY(run_matrix(expert_matrix(m.experts_down, e), ws_.expert_act + first * inner, inner, count,
                           ws_.expert_out + first * hidden, hidden, false));
        if (adapter_)
            MWB_TRY(adapter_->apply(*blas_, m.experts_down, e, ws_.expert_act + first * inner, inner, count, ws_.expert_out + first * hidden,
                                    hidden));
    }
    if (m.has_shared) MWB_TRY(mlp(m.shared, rows, ws_.shared_out));
    combine_experts(ws_.expert_out, ws_.row_of_assignment, weights, rows, k, hidden, m.has_shared ? ws_.shared_out : nullptr,
                    ws_.delta, stream_);
    return {};
}

}  // namespace mwb::cuda
