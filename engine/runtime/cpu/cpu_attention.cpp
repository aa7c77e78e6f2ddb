// Attention on the CPU: MLA over the compressed latent cache (expanded keys/values for prompt chunks, the
// absorbed W_UK/W_UV form for single decoded tokens) and grouped-query attention over a K/V cache.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "engine/runtime/cpu/cpu_backend.h"
#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb::cpu {

namespace {

// Probabilities of every query of a chunk, kept only when an observer asked for this layer.
class AttentionCapture {
public:
    AttentionCapture(ForwardObserver* observer, int64_t layer, int64_t heads, const SequenceChunk& chunk)
        : observer_(observer && observer->wants_attention(layer) ? observer : nullptr), layer_(layer), heads_(heads), chunk_(chunk) {
        if (!observer_) return;
        int64_t size = 0;
        for (int64_t i = 0; i < chunk.token_count; ++i) {
            offsets_.push_back(size);
            size += heads * (chunk.start_position + i + 1);
        }
        probabilities_.resize(size_t(size));
    }
    // Where the probabilities of (query i, head h) go, or null when nothing is captured.
    float* row(int64_t i, int64_t h) {
        if (!observer_) return nullptr;
        return probabilities_.data() + offsets_[size_t(i)] + h * (chunk_.start_position + i + 1);
    }
    void deliver() {
        if (!observer_) return;
        for (int64_t i = 0; i < chunk_.token_count; ++i) {
            const int64_t position = chunk_.start_position + i;
            observer_->on_attention(chunk_.slot, position, layer_, heads_, position + 1, probabilities_.data() + offsets_[size_t(i)]);
        }
    }

private:
    ForwardObserver* observer_;
    int64_t layer_, heads_;
    SequenceChunk chunk_;
    std::vector<int64_t> offsets_;
    std::vector<float> probabilities_;
};

}  // namespace

void CpuBackend::mla_attention(int64_t layer, const MlaWeights& w, const float* h, const ForwardBatch& batch,
                               const RowLayout& rows, float* out, ForwardObserver* observer) {
    const MlaConfig& m = *config_.mla;
    const int64_t heads = config_.num_heads, nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, vdim = m.v_head_dim;
    const int64_t lora = m.kv_lora_rank, qk = nope + rope, kv_head = nope + vdim;
    const int64_t total = int64_t(rows.slot.size());
    const float eps = float(config_.rms_norm_eps), scale = float(config_.attention_scale());

    std::vector<float> q(size_t(total * heads * qk));
    if (w.q_proj) {
        project(*w.q_proj, nullptr, h, total, q.data());
    } else {
        std::vector<float> compressed(size_t(total * w.q_a_proj->out_features));
        project(*w.q_a_proj, nullptr, h, total, compressed.data());
        rms_norm(compressed.data(), small(w.q_a_norm->weight).data(), total, w.q_a_proj->out_features, eps, compressed.data());
        project(*w.q_b_proj, nullptr, compressed.data(), total, q.data());
    }
    std::vector<float> kv(size_t(total * (lora + rope)));
    project(w.kv_a_proj, nullptr, h, total, kv.data());
    for (int64_t r = 0; r < total; ++r) {
        const int64_t position = rows.position[size_t(r)];
        float* cached = cache_row(layer, rows.slot[size_t(r)], position);
        rms_norm(kv.data() + r * (lora + rope), small(w.kv_a_norm.weight).data(), 1, lora, eps, cached);
        std::memcpy(cached + lora, kv.data() + r * (lora + rope) + lora, size_t(rope) * sizeof(float));
        graph_->rope.apply(cached + lora, 1, rope, position);
        graph_->rope.apply(q.data() + r * heads * qk + nope, heads, qk, position);
    }

    std::vector<float> attended(size_t(total * heads * vdim));
    for (size_t c = 0; c < batch.chunks.size(); ++c) {
        const SequenceChunk& chunk = batch.chunks[c];
        const int64_t first = rows.chunk_first_row[c], end = chunk.start_position + chunk.token_count;
        AttentionCapture capture(observer, layer, heads, chunk);
        auto latent = [&](int64_t t) { return cache_row(layer, chunk.slot, t); };

        if (chunk.token_count == 1) {
            // Absorbed decode: fold W_UK into the query and W_UV after the weighted sum, so attention runs
            // directly over the latent cache.
            std::vector<float> kv_b(size_t(heads * kv_head * lora));
            decode_rows(w.kv_b_proj, 0, heads * kv_head, kv_b.data());
            // An adapter on kv_b_proj acts here as part of the absorbed matrices: W + s·B·A.
            if (adapter_)
                if (auto delta = adapter_->find(&w.kv_b_proj); delta != adapter_->end()) {
                    const LowRankDelta& d = delta->second;
                    for (int64_t row = 0; row < heads * kv_head; ++row)
                        for (int64_t k = 0; k < d.rank; ++k) {
                            const float b = d.scale * d.b[size_t(row * d.rank + k)];
                            for (int64_t j = 0; j < lora; ++j) kv_b[size_t(row * lora + j)] += b * d.a[size_t(k * lora + j)];
                        }
                }
            pool_.parallel_for(heads, [&](int64_t h0, int64_t h1) {
                std::vector<float> q_latent(static_cast<size_t>(lora)), scores(static_cast<size_t>(end)), o_latent(static_cast<size_t>(lora));
                for (int64_t hd = h0; hd < h1; ++hd) {
                    const float* qh = q.data() + first * heads * qk + hd * qk;
                    const float* w_uk = kv_b.data() + hd * kv_head * lora;
                    const float* w_uv = w_uk + nope * lora;
                    std::fill(q_latent.begin(), q_latent.end(), 0.0f);
                    for (int64_t i = 0; i < nope; ++i)
                        for (int64_t j = 0; j < lora; ++j) q_latent[size_t(j)] += qh[i] * w_uk[i * lora + j];
                    for (int64_t t = 0; t < end; ++t)
                        scores[size_t(t)] = (dot(q_latent.data(), latent(t), lora) + dot(qh + nope, latent(t) + lora, rope)) * scale;
                    softmax(scores.data(), end);
                    if (float* kept = capture.row(0, hd)) std::copy(scores.begin(), scores.end(), kept);
                    std::fill(o_latent.begin(), o_latent.end(), 0.0f);
                    for (int64_t t = 0; t < end; ++t) {
                        const float* c_t = latent(t);
                        for (int64_t j = 0; j < lora; ++j) o_latent[size_t(j)] += scores[size_t(t)] * c_t[j];
                    }
                    float* o = attended.data() + first * heads * vdim + hd * vdim;
                    for (int64_t j = 0; j < vdim; ++j) o[j] = dot(w_uv + j * lora, o_latent.data(), lora);
                }
            });
        } else {
            // Prompt chunk: expand per-head keys and values from the latents of every cached position.
            std::vector<float> latents(size_t(end * lora)), expanded(size_t(end * heads * kv_head));
            for (int64_t t = 0; t < end; ++t) std::memcpy(latents.data() + t * lora, latent(t), size_t(lora) * sizeof(float));
            project(w.kv_b_proj, nullptr, latents.data(), end, expanded.data());
            pool_.parallel_for(heads * chunk.token_count, [&](int64_t begin, int64_t finish) {
                std::vector<float> scores(static_cast<size_t>(end));
                for (int64_t task = begin; task < finish; ++task) {
                    const int64_t hd = task % heads, i = task / heads, keys = chunk.start_position + i + 1;
                    const float* qh = q.data() + (first + i) * heads * qk + hd * qk;
                    for (int64_t t = 0; t < keys; ++t) {
                        const float* k_nope = expanded.data() + (t * heads + hd) * kv_head;
                        scores[size_t(t)] = (dot(qh, k_nope, nope) + dot(qh + nope, latent(t) + lora, rope)) * scale;
                    }
                    softmax(scores.data(), keys);
                    if (float* kept = capture.row(i, hd)) std::copy(scores.begin(), scores.begin() + keys, kept);
                    float* o = attended.data() + (first + i) * heads * vdim + hd * vdim;
                    std::fill(o, o + vdim, 0.0f);
                    for (int64_t t = 0; t < keys; ++t) {
                        const float* v = expanded.data() + (t * heads + hd) * kv_head + nope;
                        for (int64_t j = 0; j < vdim; ++j) o[j] += scores[size_t(t)] * v[j];
                    }
                }
            });
        }
        capture.deliver();
    }
    project(w.o_proj, nullptr, attended.data(), total, out);
}

void CpuBackend::gqa_attention(int64_t layer, const GqaWeights& w, const float* h, const ForwardBatch& batch,
                               const RowLayout& rows, float* out, ForwardObserver* observer) {
    const int64_t heads = config_.num_heads, kv_heads = config_.num_kv_heads, dim = config_.head_dim;
    const int64_t group = heads / kv_heads, total = int64_t(rows.slot.size());
    const float scale = float(config_.attention_scale());
    auto bias = [&](const LinearWeight& linear) { return linear.bias ? small(*linear.bias).data() : nullptr; };

    std::vector<float> q(size_t(total * heads * dim)), k(size_t(total * kv_heads * dim)), v(k.size());
    project(w.q_proj, bias(w.q_proj), h, total, q.data());
    project(w.k_proj, bias(w.k_proj), h, total, k.data());
    project(w.v_proj, bias(w.v_proj), h, total, v.data());
    for (int64_t r = 0; r < total; ++r) {
        const int64_t position = rows.position[size_t(r)];
        graph_->rope.apply(q.data() + r * heads * dim, heads, dim, position);
        graph_->rope.apply(k.data() + r * kv_heads * dim, kv_heads, dim, position);
        float* cached = cache_row(layer, rows.slot[size_t(r)], position);
        std::memcpy(cached, k.data() + r * kv_heads * dim, size_t(kv_heads * dim) * sizeof(float));
        std::memcpy(cached + kv_heads * dim, v.data() + r * kv_heads * dim, size_t(kv_heads * dim) * sizeof(float));
    }

    std::vector<float> attended(size_t(total * heads * dim));
    for (size_t c = 0; c < batch.chunks.size(); ++c) {
        const SequenceChunk& chunk = batch.chunks[c];
        const int64_t first = rows.chunk_first_row[c], end = chunk.start_position + chunk.token_count;
        AttentionCapture capture(observer, layer, heads, chunk);
        pool_.parallel_for(heads * chunk.token_count, [&](int64_t begin, int64_t finish) {
            std::vector<float> scores(static_cast<size_t>(end));
            for (int64_t task = begin; task < finish; ++task) {
                const int64_t hd = task % heads, i = task / heads, keys = chunk.start_position + i + 1;
                const int64_t kv_head = hd / group;
                const float* qh = q.data() + (first + i) * heads * dim + hd * dim;
                for (int64_t t = 0; t < keys; ++t)
                    scores[size_t(t)] = dot(qh, cache_row(layer, chunk.slot, t) + kv_head * dim, dim) * scale;
                softmax(scores.data(), keys);
                if (float* kept = capture.row(i, hd)) std::copy(scores.begin(), scores.begin() + keys, kept);
                float* o = attended.data() + (first + i) * heads * dim + hd * dim;
                std::fill(o, o + dim, 0.0f);
                for (int64_t t = 0; t < keys; ++t) {
                    const float* value = cache_row(layer, chunk.slot, t) + (kv_heads + kv_head) * dim;
                    for (int64_t j = 0; j < dim; ++j) o[j] += scores[size_t(t)] * value[j];
                }
            }
        });
        capture.deliver();
    }
    project(w.o_proj, nullptr, attended.data(), total, out);
}

}  // namespace mwb::cpu
