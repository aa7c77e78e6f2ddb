#include "kernels/cuda_planning.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <set>

namespace mwb::cuda {

Result<BatchPlan> plan_batch(const ForwardBatch& batch, int64_t slots, int64_t capacity, int64_t vocab, int64_t max_rows) {
    if (max_rows <= 0) return make_error("the micro-batch size must be positive");
    if (batch.chunks.empty()) return make_error("the batch has no chunks");
    int64_t counted = 0;
    std::set<int64_t> used_slots;
    for (const auto& chunk : batch.chunks) {
        if (chunk.slot < 0 || chunk.slot >= slots)
            return make_error("KV-cache slot " + std::to_string(chunk.slot) + " does not exist (" + std::to_string(slots) + " reserved)");
        if (chunk.token_count <= 0 || chunk.start_position < 0 || chunk.start_position + chunk.token_count > capacity)
            return make_error("the context is full: " + std::to_string(chunk.start_position + chunk.token_count) +
                              " tokens do not fit the KV cache of " + std::to_string(capacity));
        if (!used_slots.insert(chunk.slot).second)
            return make_error("KV-cache slot " + std::to_string(chunk.slot) + " appears twice in one batch");
        counted += chunk.token_count;
    }
    if (counted != int64_t(batch.tokens.size())) return make_error("the batch's chunks do not cover its tokens");
    for (int32_t token : batch.tokens)
        if (token < 0 || token >= vocab)
            return make_error("token id " + std::to_string(token) + " is outside the vocabulary of " + std::to_string(vocab));

    // Where each chunk's tokens start in the caller's order, and where each chunk's outputs go.
    std::vector<int64_t> first_token(batch.chunks.size()), first_output(batch.chunks.size());
    int64_t tokens_before = 0, outputs_before = 0;
    for (size_t c = 0; c < batch.chunks.size(); ++c) {
        first_token[c] = tokens_before;
        first_output[c] = outputs_before;
        tokens_before += batch.chunks[c].token_count;
        outputs_before += batch.logits_for_all_tokens ? batch.chunks[c].token_count : 1;
    }

    BatchPlan plan;
    plan.output_rows = outputs_before;
    plan.decode_only = std::all_of(batch.chunks.begin(), batch.chunks.end(), [](const SequenceChunk& c) { return c.token_count == 1; });
    MicroBatch current;
    auto flush = [&] {
        if (current.rows() > 0) plan.micro_batches.push_back(std::move(current));
        current = MicroBatch{};
    };
    auto add_row = [&](const SequenceChunk& chunk, size_t c, int64_t i) {
        current.tokens.push_back(batch.tokens[size_t(first_token[c] + i)]);
        current.batch_rows.push_back(first_token[c] + i);
        current.cache_slots.push_back(int32_t(chunk.slot));
        current.positions.push_back(int32_t(chunk.start_position + i));
        const bool last = i == chunk.token_count - 1;
        if (batch.logits_for_all_tokens || last) {
            current.output_rows.push_back(int32_t(current.rows() - 1));
            current.output_indices.push_back(first_output[c] + (batch.logits_for_all_tokens ? i : 0));
        }
    };
    for (size_t c = 0; c < batch.chunks.size(); ++c) {
        const SequenceChunk& chunk = batch.chunks[c];
        if (chunk.token_count != 1) continue;
        if (current.rows() == max_rows || current.decode_rows == kMaxDecodeRows) flush();
        add_row(chunk, c, 0);
        ++current.decode_rows;
        current.longest_decode_context = std::max(current.longest_decode_context, chunk.start_position + 1);
    }
    for (size_t c = 0; c < batch.chunks.size(); ++c) {
        const SequenceChunk& chunk = batch.chunks[c];
        if (chunk.token_count == 1) continue;
        for (int64_t done = 0; done < chunk.token_count;) {
            if (current.rows() == max_rows) flush();
            const int64_t take = std::min(chunk.token_count - done, max_rows - current.rows());
            current.prefill.push_back({chunk.slot, chunk.start_position + done, take, current.rows()});
            for (int64_t i = done; i < done + take; ++i) add_row(chunk, c, i);
            done += take;
        }
    }
    flush();
    return plan;
}

MoeDispatch dispatch_by_expert(std::span<const int32_t> chosen_experts, int64_t experts_per_token, int64_t experts) {
    MoeDispatch d;
    d.offsets.assign(size_t(experts + 1), 0);
    for (int32_t e : chosen_experts) ++d.offsets[size_t(e + 1)];
    for (int64_t e = 0; e < experts; ++e) {
        if (d.offsets[size_t(e + 1)] > 0) d.active_experts.push_back(int32_t(e));
        d.offsets[size_t(e + 1)] += d.offsets[size_t(e)];
    }
    std::vector<int32_t> cursor(d.offsets.begin(), d.offsets.end() - 1);
    d.token_of_row.resize(chosen_experts.size());
    d.row_of_assignment.resize(chosen_experts.size());
    for (size_t a = 0; a < chosen_experts.size(); ++a) {
        const int32_t row = cursor[size_t(chosen_experts[a])]++;
        d.token_of_row[size_t(row)] = int32_t(int64_t(a) / experts_per_token);
        d.row_of_assignment[a] = row;
    }
    return d;
}

int64_t decode_attention_splits(int64_t rows, int64_t head_blocks, int64_t longest_context, int64_t multiprocessors,
                                int64_t max_blocks) {
    constexpr int64_t kMinKeysPerSplit = 64;  // fewer keys per block cost more in partial states than they save
    const int64_t base = std::max<int64_t>(1, rows * head_blocks);
    const int64_t wanted = std::max<int64_t>(1, (2 * multiprocessors + base - 1) / base);
    const int64_t useful = std::max<int64_t>(1, (longest_context + kMinKeysPerSplit - 1) / kMinKeysPerSplit);
    int64_t splits = 1;
    while (splits * 2 <= std::min(wanted, useful) && base * splits * 2 <= max_blocks) splits *= 2;
    return splits;
}

int64_t decode_partial_blocks(int64_t multiprocessors) { return std::max<int64_t>(64, 4 * multiprocessors); }

int64_t decode_heads_per_block(int64_t heads_sharing_kv) {
    for (int64_t h = std::min(kDecodeHeadRows, heads_sharing_kv); h > 1; --h)
        if (heads_sharing_kv % h == 0) return h;
    return 1;
}

int64_t prefill_query_tile(int64_t heads, int64_t keys, int64_t chunk_rows, size_t budget_bytes) {
    const size_t per_row = size_t(heads) * size_t(std::max<int64_t>(keys, 1)) * (sizeof(float) + 2);
    return std::clamp<int64_t>(int64_t(budget_bytes / per_row), 1, std::max<int64_t>(chunk_rows, 1));
}

size_t matrix_value_bytes(int64_t rows, int64_t cols, WeightFormat format) {
    const size_t values = size_t(rows) * size_t(cols);
    switch (format) {
        case WeightFormat::BF16: return values * 2;
        case WeightFormat::INT4: return (values + 1) / 2;
        default: return values;
    }
}

size_t device_linear_bytes(int64_t out_features, int64_t in_features, WeightFormat format) {
    const size_t values = matrix_value_bytes(out_features, in_features, format);
    if (format == WeightFormat::BF16) return values;
    const size_t groups = size_t((in_features + kScaleGroupColumns - 1) / kScaleGroupColumns);
    return values + size_t(out_features) * groups * sizeof(float);
}

WeightFormat device_format(const LinearWeight& weight, WeightQuantisation quantisation) {
    if (weight.weight.dtype == DType::F8_E4M3) return WeightFormat::FP8;
    switch (quantisation) {
        case WeightQuantisation::Int8: return WeightFormat::INT8;
        case WeightQuantisation::Int4: return WeightFormat::INT4;
        default: return WeightFormat::BF16;
    }
}

size_t WorkspaceLayout::offset_of(const std::string& name) const {
    for (const auto& b : buffers)
        if (b.name == name) return b.offset;
    return SIZE_MAX;
}

WorkspaceLayout plan_workspace(const ModelConfig& c, const WorkspaceShape& s) {
    WorkspaceLayout layout;
    auto add = [&](const std::string& name, size_t bytes) {
        constexpr size_t kAlignment = 256;
        layout.buffers.push_back({name, bytes, layout.total_bytes});
        layout.total_bytes += (bytes + kAlignment - 1) / kAlignment * kAlignment;
    };
    const size_t R = size_t(s.max_rows), D = size_t(s.max_decode_rows), C = size_t(s.capacity), H = size_t(c.hidden_size);
    const size_t bf16 = 2, f32 = 4, i32 = 4;
    add("inputs", R * 4 * i32 + R * kSamplingParamBytes);  // tokens, slots, positions, output rows; sampling parameters
    add("sampled", R * i32);
    add("x", R * H * f32);
    add("h", R * H * bf16);
    add("delta", R * H * bf16);

    const size_t heads = size_t(c.num_heads);
    size_t value_dim = 0;  // per head, what decode attention accumulates
    if (c.mla) {
        const MlaConfig& m = *c.mla;
        const size_t qk = size_t(m.qk_nope_head_dim + m.qk_rope_head_dim), lora = size_t(m.kv_lora_rank);
        const size_t q_width = m.q_lora_rank ? size_t(*m.q_lora_rank) : heads * qk;
        add("qkv_a", R * (q_width + lora + size_t(m.qk_rope_head_dim)) * bf16);
        if (m.q_lora_rank) {
            add("q_a_normed", R * size_t(*m.q_lora_rank) * bf16);
            add("q", R * heads * qk * bf16);
        }
        add("q_cat", D * heads * (lora + size_t(m.qk_rope_head_dim)) * bf16);
        add("o_latent", D * heads * lora * bf16);
        add("attended", R * heads * size_t(m.v_head_dim) * bf16);
        add("expanded", C * heads * size_t(m.qk_nope_head_dim + m.v_head_dim) * bf16);
        add("keys", C * heads * qk * bf16);
        value_dim = lora;
    } else {
        const size_t d = size_t(c.head_dim), kv = size_t(c.num_kv_heads);
        add("qkv", R * (heads + 2 * kv) * d * bf16);
        add("attended", R * heads * d * bf16);
        value_dim = d;
    }
    const size_t tile = size_t(prefill_query_tile(int64_t(heads), int64_t(C), int64_t(R), s.attention_budget_bytes));
    add("scores", heads * tile * C * f32);
    add("probabilities", heads * tile * C * bf16);
    // Enough partial states for the split grid, and for one block per (row, head block) when it cannot split.
    const int64_t sharing = c.mla ? c.num_heads : c.num_heads / std::max<int64_t>(c.num_kv_heads, 1);
    const int64_t head_blocks = c.num_heads / decode_heads_per_block(sharing);
    const size_t blocks = size_t(std::max(decode_partial_blocks(s.multiprocessors), s.max_decode_rows * head_blocks));
    add("decode_partials", blocks * size_t(kDecodeHeadRows) * (value_dim + 2) * f32);

    int64_t dense_inner = 0;
    bool any_dense = false;
    for (int64_t l = 0; l < c.num_layers; ++l) any_dense |= !c.is_moe_layer(l);
    if (any_dense) dense_inner = c.intermediate_size;
    if (c.moe && c.moe->n_shared_experts > 0)
        dense_inner = std::max(dense_inner, c.moe->moe_intermediate_size * c.moe->n_shared_experts);
    if (dense_inner > 0) {
        add("gate_up", R * 2 * size_t(dense_inner) * bf16);
        add("act", R * size_t(dense_inner) * bf16);
    }
    if (c.moe) {
        const size_t E = size_t(c.moe->n_routed_experts), k = size_t(c.moe->experts_per_token);
        const size_t inner = size_t(c.moe->moe_intermediate_size);
        size_t moe_layers = 0;
        for (int64_t l = 0; l < c.num_layers; ++l) moe_layers += c.is_moe_layer(l) ? 1 : 0;
        add("shared_out", R * H * bf16);
        add("router_logits", moe_layers * R * E * f32);
        add("routed_experts", moe_layers * R * k * i32);
        add("routed_weights", moe_layers * R * k * f32);
        add("expert_offsets", (E + 1) * i32);
        add("active_experts", (E + 1) * i32);
        add("row_of_assignment", R * k * i32);
        add("token_of_row", R * k * i32);
        add("dispatched", R * k * H * bf16);
        add("expert_gate_up", R * k * 2 * inner * bf16);
        add("expert_act", R * k * inner * bf16);
        add("expert_out", R * k * H * bf16);
    }
    const size_t logits_rows = std::min<size_t>(R, size_t(kLogitsRowsPerPass));
    add("final_rows", logits_rows * H * bf16);
    add("logits", logits_rows * size_t(c.vocab_size) * f32);
    add("cublas", kCublasWorkspaceBytes);
    if (s.dequantise_scratch_bytes) add("dequantise", s.dequantise_scratch_bytes);
    return layout;
}

size_t kv_cache_bytes(const ModelConfig& config, int64_t slots, int64_t capacity) {
    return size_t(config.kv_cache_values_per_token()) * size_t(slots) * size_t(capacity) * 2;
}

size_t device_weight_bytes(const ModelGraph& graph, WeightQuantisation quantisation) {
    const ModelConfig& c = graph.config;
    size_t bytes = size_t(c.vocab_size) * size_t(c.hidden_size) * 2;  // embedding, bf16
    auto linear = [&](const LinearWeight& w, bool keep_bf16 = false) {
        const WeightFormat format = keep_bf16 ? WeightFormat::BF16 : device_format(w, quantisation);
        bytes += device_linear_bytes(w.out_features, w.in_features, format);
        if (w.bias) bytes += size_t(w.out_features) * sizeof(float);
    };
    auto vector = [&](const VectorWeight& v) { bytes += size_t(v.size) * sizeof(float); };
    for (const DecoderLayer& layer : graph.layers) {
        vector(layer.input_norm);
        vector(layer.post_attention_norm);
        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
            if (mla->q_proj) linear(*mla->q_proj);
            if (mla->q_a_proj) linear(*mla->q_a_proj);
            if (mla->q_a_norm) vector(*mla->q_a_norm);
            if (mla->q_b_proj) linear(*mla->q_b_proj);
            linear(mla->kv_a_proj);
            vector(mla->kv_a_norm);
            // The absorbed decode multiplies by W_UK / W_UV directly: always bf16.
            bytes += size_t(mla->kv_b_proj.out_features) * size_t(mla->kv_b_proj.in_features) * 2;
            linear(mla->o_proj);
        } else {
            const auto& gqa = std::get<GqaWeights>(layer.attention);
            for (const LinearWeight* w : {&gqa.q_proj, &gqa.k_proj, &gqa.v_proj, &gqa.o_proj}) linear(*w);
        }
        auto mlp = [&](const MlpWeights& w) {
            linear(w.gate_proj);
            linear(w.up_proj);
            linear(w.down_proj);
        };
        if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) {
            linear(moe->router, true);
            if (moe->score_bias) vector(*moe->score_bias);
            for (const MlpWeights& e : moe->experts) mlp(e);
            if (moe->shared) mlp(*moe->shared);
        } else {
            mlp(std::get<MlpWeights>(layer.feed_forward));
        }
    }
    vector(graph.final_norm);
    bytes += graph.rope.inverse_frequency.size() * sizeof(float);
    if (graph.lm_head.weight.data != graph.embed_tokens.weight.data) linear(graph.lm_head);
    return bytes;
}

std::string describe_bytes(size_t bytes) {
    char text[64];
    if (bytes >= (size_t(1) << 30)) std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
    else if (bytes >= (size_t(1) << 20)) std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / double(size_t(1) << 20));
    else std::snprintf(text, sizeof text, "%zu bytes", bytes);
    return text;
}

}  // namespace mwb::cuda
