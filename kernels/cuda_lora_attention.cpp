// CudaLoraModel's attention blocks, forward and backward, as lora_model.cpp's: MLA (with and without q_lora,
// the rope key shared by every head) and GQA (heads grouped over key/value heads), each head's products as
// strided-batched fp32 GEMMs around the causal softmax kernels of train_ops.cu.
#include <cstdint>
#include <string>

#include "kernels/cuda_lora_model_impl.h"

namespace mwb {

Status CudaLoraModel::Impl::attention_forward(int64_t layer, const MlaWeights& w, LayerTape& tape, float*& out) {
    const MlaConfig& m = *config.mla;
    const int64_t heads = config.num_heads, nope = m.qk_nope_head_dim, rope_dim = m.qk_rope_head_dim, vdim = m.v_head_dim;
    const int64_t lora = m.kv_lora_rank, qk = nope + rope_dim, kv_head = nope + vdim, latent_row = lora + rope_dim;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float attention_scale = float(config.attention_scale());
    DeviceArena& arena = *tape_arena;

    if (w.q_proj) {
        MWB_TRY(project(p + ".q_proj", *w.q_proj, tape.h1, t, tape.q));
    } else {
        const int64_t q_lora = w.q_a_proj->out_features;
        MWB_TRY(project(p + ".q_a_proj", *w.q_a_proj, tape.h1, t, tape.qa));
        MWB_TRY(floats(arena, tape.qa_normed, t * q_lora));
        MWB_TRY(floats(arena, tape.inv_qa, t));
        cuda::rms_norm_forward(tape.qa, q_lora, vector(w.q_a_norm->weight), t, q_lora, eps(), tape.qa_normed, tape.inv_qa, stream);
        MWB_TRY(project(p + ".q_b_proj", *w.q_b_proj, tape.qa_normed, t, tape.q));
    }
    MWB_TRY(project(p + ".kv_a_proj_with_mqa", w.kv_a_proj, tape.h1, t, tape.kv_a));
    MWB_TRY(floats(arena, tape.latent, t * lora));
    MWB_TRY(floats(arena, tape.inv_latent, t));
    MWB_TRY(floats(arena, tape.k_rope, t * rope_dim));
    cuda::rms_norm_forward(tape.kv_a, latent_row, vector(w.kv_a_norm.weight), t, lora, eps(), tape.latent, tape.inv_latent, stream);
    cuda::copy_columns(tape.kv_a + lora, latent_row, t, rope_dim, tape.k_rope, rope_dim, false, stream);
    cuda::rope_forward(tape.k_rope, t, rope_dim, 1, rope_dim, positions, rope, stream);
    cuda::rope_forward(tape.q + nope, t, heads * qk, heads, qk, positions, rope, stream);
    MWB_TRY(project(p + ".kv_b_proj", w.kv_b_proj, tape.latent, t, tape.kv));

    // Scores per head: q_nope·k_nopeᵀ, plus q_rope·k_ropeᵀ with the one rope key of every head, scaled.
    float* scores = nullptr;
    MWB_TRY(floats(scratch, scores, heads * t * t));
    cuda::Blas::RowMajorFp32 s;
    s.transpose_b = true;
    s.m = t, s.n = t, s.k = nope, s.alpha = attention_scale, s.batch = heads;
    s.a = tape.q, s.lda = heads * qk, s.stride_a = qk;
    s.b = tape.kv, s.ldb = heads * kv_head, s.stride_b = kv_head;
    s.c = scores, s.ldc = t, s.stride_c = t * t;
    MWB_TRY(blas->product_fp32(s));
    s.k = rope_dim, s.accumulate = true;
    s.a = tape.q + nope, s.b = tape.k_rope, s.ldb = rope_dim, s.stride_b = 0;
    MWB_TRY(blas->product_fp32(s));
    MWB_TRY(floats(arena, tape.probabilities, heads * t * t));
    cuda::causal_softmax_forward(scores, heads, t, tape.probabilities, stream);

    MWB_TRY(floats(arena, tape.attended, t * heads * vdim));
    cuda::Blas::RowMajorFp32 o;  // O_h = P_h·V_h
    o.m = t, o.n = vdim, o.k = t, o.batch = heads;
    o.a = tape.probabilities, o.lda = t, o.stride_a = t * t;
    o.b = tape.kv + nope, o.ldb = heads * kv_head, o.stride_b = kv_head;
    o.c = tape.attended, o.ldc = heads * vdim, o.stride_c = vdim;
    MWB_TRY(blas->product_fp32(o));
    return project(p + ".o_proj", w.o_proj, tape.attended, t, out);
}

Status CudaLoraModel::Impl::attention_backward(int64_t layer, const MlaWeights& w, const LayerTape& tape, const float* d_out,
                                               float*& d_h1) {
    const MlaConfig& m = *config.mla;
    const int64_t heads = config.num_heads, nope = m.qk_nope_head_dim, rope_dim = m.qk_rope_head_dim, vdim = m.v_head_dim;
    const int64_t lora = m.kv_lora_rank, qk = nope + rope_dim, kv_head = nope + vdim, latent_row = lora + rope_dim;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float attention_scale = float(config.attention_scale());

    float *d_attended = nullptr, *d_q = nullptr, *d_kv = nullptr, *d_s = nullptr, *d_k_rope_per_head = nullptr, *d_k_rope = nullptr;
    MWB_TRY(zeros(scratch, d_attended, t * heads * vdim));
    MWB_TRY(project_backward(p + ".o_proj", w.o_proj, tape.attended, d_out, t, d_attended));
    MWB_TRY(floats(scratch, d_q, t * heads * qk));
    MWB_TRY(floats(scratch, d_kv, t * heads * kv_head));
    MWB_TRY(floats(scratch, d_s, heads * t * t));
    MWB_TRY(floats(scratch, d_k_rope_per_head, heads * t * rope_dim));
    MWB_TRY(floats(scratch, d_k_rope, t * rope_dim));

    cuda::Blas::RowMajorFp32 g;  // dV_h = P_hᵀ·dO_h
    g.transpose_a = true;
    g.m = t, g.n = vdim, g.k = t, g.batch = heads;
    g.a = tape.probabilities, g.lda = t, g.stride_a = t * t;
    g.b = d_attended, g.ldb = heads * vdim, g.stride_b = vdim;
    g.c = d_kv + nope, g.ldc = heads * kv_head, g.stride_c = kv_head;
    MWB_TRY(blas->product_fp32(g));
    g = {};  // dP_h = dO_h·V_hᵀ
    g.transpose_b = true;
    g.m = t, g.n = t, g.k = vdim, g.batch = heads;
    g.a = d_attended, g.lda = heads * vdim, g.stride_a = vdim;
    g.b = tape.kv + nope, g.ldb = heads * kv_head, g.stride_b = kv_head;
    g.c = d_s, g.ldc = t, g.stride_c = t * t;
    MWB_TRY(blas->product_fp32(g));
    cuda::causal_softmax_backward(tape.probabilities, d_s, heads, t, attention_scale, d_s, stream);

    g = {};  // dQ_h = dS_h·[K_nope_h | k_rope]
    g.m = t, g.n = nope, g.k = t, g.batch = heads;
    g.a = d_s, g.lda = t, g.stride_a = t * t;
    g.b = tape.kv, g.ldb = heads * kv_head, g.stride_b = kv_head;
    g.c = d_q, g.ldc = heads * qk, g.stride_c = qk;
    MWB_TRY(blas->product_fp32(g));
    g.n = rope_dim, g.b = tape.k_rope, g.ldb = rope_dim, g.stride_b = 0, g.c = d_q + nope;
    MWB_TRY(blas->product_fp32(g));
    g = {};  // dK_h = dS_hᵀ·Q_h: the nope part per head, the rope part per head and then summed in head order
    g.transpose_a = true;
    g.m = t, g.n = nope, g.k = t, g.batch = heads;
    g.a = d_s, g.lda = t, g.stride_a = t * t;
    g.b = tape.q, g.ldb = heads * qk, g.stride_b = qk;
    g.c = d_kv, g.ldc = heads * kv_head, g.stride_c = kv_head;
    MWB_TRY(blas->product_fp32(g));
    g.n = rope_dim, g.b = tape.q + nope, g.c = d_k_rope_per_head, g.ldc = rope_dim, g.stride_c = t * rope_dim;
    MWB_TRY(blas->product_fp32(g));
    cuda::sum_heads(d_k_rope_per_head, heads, t * rope_dim, d_k_rope, stream);

    // Back through RoPE (its transpose) to the unrotated query and key parts.
    cuda::rope_backward(d_q + nope, t, heads * qk, heads, qk, positions, rope, stream);
    cuda::rope_backward(d_k_rope, t, rope_dim, 1, rope_dim, positions, rope, stream);
    float *d_latent = nullptr, *d_kv_a = nullptr;
    MWB_TRY(zeros(scratch, d_latent, t * lora));
    MWB_TRY(project_backward(p + ".kv_b_proj", w.kv_b_proj, tape.latent, d_kv, t, d_latent));
    MWB_TRY(zeros(scratch, d_kv_a, t * latent_row));
    cuda::rms_norm_backward_add(tape.kv_a, latent_row, tape.inv_latent, vector(w.kv_a_norm.weight), d_latent, t, lora, d_kv_a, stream);
    cuda::copy_columns(d_k_rope, rope_dim, t, rope_dim, d_kv_a + lora, latent_row, false, stream);
    MWB_TRY(zeros(scratch, d_h1, t * config.hidden_size));
    MWB_TRY(project_backward(p + ".kv_a_proj_with_mqa", w.kv_a_proj, tape.h1, d_kv_a, t, d_h1));
    if (w.q_proj) return project_backward(p + ".q_proj", *w.q_proj, tape.h1, d_q, t, d_h1);
    const int64_t q_lora = w.q_a_proj->out_features;
    float *d_qa_normed = nullptr, *d_qa = nullptr;
    MWB_TRY(zeros(scratch, d_qa_normed, t * q_lora));
    MWB_TRY(project_backward(p + ".q_b_proj", *w.q_b_proj, tape.qa_normed, d_q, t, d_qa_normed));
    MWB_TRY(zeros(scratch, d_qa, t * q_lora));
    cuda::rms_norm_backward_add(tape.qa, q_lora, tape.inv_qa, vector(w.q_a_norm->weight), d_qa_normed, t, q_lora, d_qa, stream);
    return project_backward(p + ".q_a_proj", *w.q_a_proj, tape.h1, d_qa, t, d_h1);
}

Status CudaLoraModel::Impl::attention_forward(int64_t layer, const GqaWeights& w, LayerTape& tape, float*& out) {
    const int64_t heads = config.num_heads, kv_heads = config.num_kv_heads, dim = config.head_dim, group = heads / kv_heads;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float attention_scale = float(config.attention_scale());
    DeviceArena& arena = *tape_arena;
    MWB_TRY(project(p + ".q_proj", w.q_proj, tape.h1, t, tape.q));
    MWB_TRY(project(p + ".k_proj", w.k_proj, tape.h1, t, tape.k));
    MWB_TRY(project(p + ".v_proj", w.v_proj, tape.h1, t, tape.v));
    cuda::rope_forward(tape.q, t, heads * dim, heads, dim, positions, rope, stream);
    cuda::rope_forward(tape.k, t, kv_heads * dim, kv_heads, dim, positions, rope, stream);

    // Head h = kv·group + g reads key/value head kv: one batch over the key/value heads per g.
    float* scores = nullptr;
    MWB_TRY(floats(scratch, scores, heads * t * t));
    MWB_TRY(floats(arena, tape.probabilities, heads * t * t));
    MWB_TRY(floats(arena, tape.attended, t * heads * dim));
    for (int64_t g = 0; g < group; ++g) {
        cuda::Blas::RowMajorFp32 s;
        s.transpose_b = true;
        s.m = t, s.n = t, s.k = dim, s.alpha = attention_scale, s.batch = kv_heads;
        s.a = tape.q + g * dim, s.lda = heads * dim, s.stride_a = group * dim;
        s.b = tape.k, s.ldb = kv_heads * dim, s.stride_b = dim;
        s.c = scores + g * t * t, s.ldc = t, s.stride_c = group * t * t;
        MWB_TRY(blas->product_fp32(s));
    }
    cuda::causal_softmax_forward(scores, heads, t, tape.probabilities, stream);
    for (int64_t g = 0; g < group; ++g) {
        cuda::Blas::RowMajorFp32 o;
        o.m = t, o.n = dim, o.k = t, o.batch = kv_heads;
        o.a = tape.probabilities + g * t * t, o.lda = t, o.stride_a = group * t * t;
        o.b = tape.v, o.ldb = kv_heads * dim, o.stride_b = dim;
        o.c = tape.attended + g * dim, o.ldc = heads * dim, o.stride_c = group * dim;
        MWB_TRY(blas->product_fp32(o));
    }
    return project(p + ".o_proj", w.o_proj, tape.attended, t, out);
}

Status CudaLoraModel::Impl::attention_backward(int64_t layer, const GqaWeights& w, const LayerTape& tape, const float* d_out,
                                               float*& d_h1) {
    const int64_t heads = config.num_heads, kv_heads = config.num_kv_heads, dim = config.head_dim, group = heads / kv_heads;
    const std::string p = layer_prefix(layer) + ".self_attn";
    const float attention_scale = float(config.attention_scale());
    float *d_attended = nullptr, *d_q = nullptr, *d_k = nullptr, *d_v = nullptr, *d_s = nullptr;
    MWB_TRY(zeros(scratch, d_attended, t * heads * dim));
    MWB_TRY(project_backward(p + ".o_proj", w.o_proj, tape.attended, d_out, t, d_attended));
    MWB_TRY(floats(scratch, d_q, t * heads * dim));
    MWB_TRY(zeros(scratch, d_k, t * kv_heads * dim));
    MWB_TRY(zeros(scratch, d_v, t * kv_heads * dim));
    MWB_TRY(floats(scratch, d_s, heads * t * t));
    // The heads of a group add into their key/value head's gradients in head order.
    for (int64_t g = 0; g < group; ++g) {
        cuda::Blas::RowMajorFp32 v;  // dV_kv += P_hᵀ·dO_h
        v.transpose_a = true, v.accumulate = true;
        v.m = t, v.n = dim, v.k = t, v.batch = kv_heads;
        v.a = tape.probabilities + g * t * t, v.lda = t, v.stride_a = group * t * t;
        v.b = d_attended + g * dim, v.ldb = heads * dim, v.stride_b = group * dim;
        v.c = d_v, v.ldc = kv_heads * dim, v.stride_c = dim;
        MWB_TRY(blas->product_fp32(v));
        cuda::Blas::RowMajorFp32 dp;  // dP_h = dO_h·V_kvᵀ
        dp.transpose_b = true;
        dp.m = t, dp.n = t, dp.k = dim, dp.batch = kv_heads;
        dp.a = d_attended + g * dim, dp.lda = heads * dim, dp.stride_a = group * dim;
        dp.b = tape.v, dp.ldb = kv_heads * dim, dp.stride_b = dim;
        dp.c = d_s + g * t * t, dp.ldc = t, dp.stride_c = group * t * t;
        MWB_TRY(blas->product_fp32(dp));
    }
    cuda::causal_softmax_backward(tape.probabilities, d_s, heads, t, attention_scale, d_s, stream);
    for (int64_t g = 0; g < group; ++g) {
        cuda::Blas::RowMajorFp32 q;  // dQ_h = dS_h·K_kv
        q.m = t, q.n = dim, q.k = t, q.batch = kv_heads;
        q.a = d_s + g * t * t, q.lda = t, q.stride_a = group * t * t;
        q.b = tape.k, q.ldb = kv_heads * dim, q.stride_b = dim;
        q.c = d_q + g * dim, q.ldc = heads * dim, q.stride_c = group * dim;
        MWB_TRY(blas->product_fp32(q));
        cuda::Blas::RowMajorFp32 k;  // dK_kv += dS_hᵀ·Q_h
        k.transpose_a = true, k.accumulate = true;
        k.m = t, k.n = dim, k.k = t, k.batch = kv_heads;
        k.a = d_s + g * t * t, k.lda = t, k.stride_a = group * t * t;
        k.b = tape.q + g * dim, k.ldb = heads * dim, k.stride_b = group * dim;
        k.c = d_k, k.ldc = kv_heads * dim, k.stride_c = dim;
        MWB_TRY(blas->product_fp32(k));
    }
    cuda::rope_backward(d_q, t, heads * dim, heads, dim, positions, rope, stream);
    cuda::rope_backward(d_k, t, kv_heads * dim, kv_heads, dim, positions, rope, stream);
    MWB_TRY(zeros(scratch, d_h1, t * config.hidden_size));
    MWB_TRY(project_backward(p + ".q_proj", w.q_proj, tape.h1, d_q, t, d_h1));
    MWB_TRY(project_backward(p + ".k_proj", w.k_proj, tape.h1, d_k, t, d_h1));
    return project_backward(p + ".v_proj", w.v_proj, tape.h1, d_v, t, d_h1);
}

}  // namespace mwb
