// CudaLoraModel: the frozen weights uploaded once, arenas for a row's activations, the adapter's products, the
// dense and MoE feed-forward blocks, and a row's forward pass, loss and backward pass, each step as
// engine/train/lora_model.cpp takes it. The attention blocks are in cuda_lora_attention.cpp.
#include "kernels/cuda_lora_model.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "engine/io/dtype.h"
#include "engine/runtime/cpu/cpu_ops.h"
#include "kernels/cuda_lora_model_impl.h"

namespace mwb {

namespace {

constexpr size_t kArenaBlockBytes = size_t(64) << 20;

}  // namespace

DeviceArena::~DeviceArena() {
    for (const Block& block : blocks_) cudaFree(block.base);
}

Result<void*> DeviceArena::take(size_t bytes, const std::string& what) {
    bytes = std::max<size_t>((bytes + 255) / 256 * 256, 256);  // 256-byte aligned, as cudaMalloc's own blocks
    for (; current_ < blocks_.size(); ++current_) {
        Block& block = blocks_[current_];
        if (block.used + bytes > block.size) continue;
        void* pointer = static_cast<uint8_t*>(block.base) + block.used;
        block.used += bytes;
        return pointer;
    }
    const size_t size = std::max(bytes, kArenaBlockBytes);
    void* base = nullptr;
    if (const cudaError_t status = cudaMalloc(&base, size); status != cudaSuccess) {
        cudaGetLastError();
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        return make_error("out of GPU memory: training activations (" + what + ") need " + cuda::describe_bytes(size) + " more, " +
                          cuda::describe_bytes(free_bytes) + " of " + cuda::describe_bytes(total_bytes) +
                          " free; shorten the rows (--cutoff) or turn on gradient checkpointing");
    }
    blocks_.push_back({base, size, bytes});
    current_ = blocks_.size() - 1;
    return base;
}

void DeviceArena::reset() {
    for (Block& block : blocks_) block.used = 0;
    current_ = 0;
}

size_t DeviceArena::bytes() const {
    size_t total = 0;
    for (const Block& block : blocks_) total += block.size;
    return total;
}

CudaLoraModel::Impl::~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    blas.reset();
    if (stream) cudaStreamDestroy(stream);
}

Status CudaLoraModel::Impl::upload_weights() {
    std::vector<float> decoded;
    std::vector<uint16_t> half;
    auto upload_matrix = [&](const LinearWeight& w, const std::string& name) -> Result<const cuda::bf16*> {
        const size_t count = size_t(w.out_features * w.in_features);
        auto memory = weights.allocate(count * 2, name);
        if (!memory) return memory.error();
        decoded.resize(count);
        half.resize(count);
        cpu::decode_rows(w, 0, w.out_features, decoded.data());
        std::transform(decoded.begin(), decoded.end(), half.begin(), float_to_bf16);
        MWB_CUDA_TRY(cudaMemcpy(*memory, half.data(), count * 2, cudaMemcpyHostToDevice));
        return static_cast<const cuda::bf16*>(*memory);
    };
    auto upload_floats = [&](const void* key, const std::vector<float>& values, const std::string& name) -> Status {
        auto memory = weights.allocate(values.size() * sizeof(float), name);
        if (!memory) return memory.error();
        MWB_CUDA_TRY(cudaMemcpy(*memory, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice));
        vectors[key] = static_cast<const float*>(*memory);
        return {};
    };
    auto upload_vector = [&](const VectorWeight& v, const std::string& name) { return upload_floats(&v.weight, cpu::decode_vector(v.weight), name); };

    for (const auto& [name, weight] : train::linear_modules(*graph)) {
        auto uploaded = upload_matrix(*weight, name);
        if (!uploaded) return uploaded.error();
        matrices[weight] = *uploaded;
        if (weight->bias) MWB_TRY(upload_floats(&*weight->bias, cpu::decode_vector(*weight->bias), name + ".bias"));
    }
    auto table = upload_matrix(graph->embed_tokens, "the embedding table");
    if (!table) return table.error();
    embedding = *table;
    if (graph->lm_head.weight.data == graph->embed_tokens.weight.data) {
        matrices[&graph->lm_head] = embedding;
    } else {
        auto head = upload_matrix(graph->lm_head, "lm_head");
        if (!head) return head.error();
        matrices[&graph->lm_head] = *head;
    }
    MWB_TRY(upload_vector(graph->final_norm, "the final norm"));
    for (size_t l = 0; l < graph->layers.size(); ++l) {
        const DecoderLayer& layer = graph->layers[l];
        const std::string name = layer_prefix(int64_t(l));
        MWB_TRY(upload_vector(layer.input_norm, name + ".input_layernorm"));
        MWB_TRY(upload_vector(layer.post_attention_norm, name + ".post_attention_layernorm"));
        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
            if (mla->q_a_norm) MWB_TRY(upload_vector(*mla->q_a_norm, name + ".self_attn.q_a_layernorm"));
            MWB_TRY(upload_vector(mla->kv_a_norm, name + ".self_attn.kv_a_layernorm"));
        }
        if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) {
            // The router stays fp32, so that it chooses the experts the CPU trainer chooses wherever it can.
            std::vector<float> router(size_t(moe->router.out_features * moe->router.in_features));
            cpu::decode_rows(moe->router, 0, moe->router.out_features, router.data());
            MWB_TRY(upload_floats(&moe->router, router, name + ".mlp.gate"));
            if (moe->score_bias) score_biases[&moe->router] = cpu::decode_vector(moe->score_bias->weight);
        }
    }
    auto frequencies = weights.allocate(graph->rope.inverse_frequency.size() * sizeof(float), "rope frequencies");
    if (!frequencies) return frequencies.error();
    MWB_CUDA_TRY(cudaMemcpy(*frequencies, graph->rope.inverse_frequency.data(), graph->rope.inverse_frequency.size() * sizeof(float),
                            cudaMemcpyHostToDevice));
    rope.inverse_frequency = static_cast<const float*>(*frequencies);
    rope.rotary_dim = graph->rope.rotary_dim;
    rope.interleaved = graph->rope.layout == RopeLayout::Interleaved;
    rope.attention_factor = graph->rope.attention_factor;
    return {};
}

Status CudaLoraModel::Impl::floats(DeviceArena& arena, float*& out, int64_t count) {
    auto memory = arena.take(size_t(count) * sizeof(float), "a row's activations");
    if (!memory) return memory.error();
    out = static_cast<float*>(*memory);
    return {};
}

Status CudaLoraModel::Impl::zeros(DeviceArena& arena, float*& out, int64_t count) {
    MWB_TRY(floats(arena, out, count));
    MWB_CUDA_TRY(cudaMemsetAsync(out, 0, size_t(count) * sizeof(float), stream));
    return {};
}

Status CudaLoraModel::Impl::integers(DeviceArena& arena, int32_t*& out, const std::vector<int32_t>& values) {
    auto memory = arena.take(values.size() * sizeof(int32_t), "a row's indices");
    if (!memory) return memory.error();
    out = static_cast<int32_t*>(*memory);
    // From pageable memory: the call returns once the values are staged, so `values` may go away after it.
    MWB_CUDA_TRY(cudaMemcpyAsync(out, values.data(), values.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
    return {};
}

Status CudaLoraModel::Impl::upload(DeviceArena& arena, float*& out, const std::vector<float>& values) {
    MWB_TRY(floats(arena, out, int64_t(values.size())));
    MWB_CUDA_TRY(cudaMemcpyAsync(out, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
    return {};
}

Status CudaLoraModel::Impl::frozen_forward(const cuda::bf16* w, int64_t in, int64_t out, const float* x, int64_t rows, float* y) {
    auto rounded = scratch.take(size_t(rows * in) * 2, "a GEMM's bf16 input");
    if (!rounded) return rounded.error();
    auto* x_bf16 = static_cast<cuda::bf16*>(*rounded);
    cuda::to_bf16(x, rows * in, x_bf16, stream);
    return blas->linear(x_bf16, in, rows, w, out, in, y, true, out);
}

Status CudaLoraModel::Impl::frozen_backward(const cuda::bf16* w, int64_t in, int64_t out, const float* dy, int64_t rows, float* dx) {
    auto rounded = scratch.take(size_t(rows * out) * 2, "a GEMM's bf16 input");
    if (!rounded) return rounded.error();
    auto* dy_bf16 = static_cast<cuda::bf16*>(*rounded);
    cuda::to_bf16(dy, rows * out, dy_bf16, stream);
    // Column-major dxᵀ [in, rows] += Wᵀ·dyᵀ: W's [out][in] storage read column-major is Wᵀ, dy's is dyᵀ.
    cuda::Blas::Batched product;
    product.accumulate = true;
    product.m = in, product.n = rows, product.k = out;
    product.a = w, product.lda = in;
    product.b = dy_bf16, product.ldb = out;
    product.c = dx, product.c_fp32 = true, product.ldc = in;
    return blas->batched(product);
}

Status CudaLoraModel::Impl::dropout_input(const DeviceModule& m, const float* x, int64_t count, DeviceArena& arena, const float*& out) {
    out = x;
    if (dropout <= 0) return {};
    float* dropped = nullptr;
    MWB_TRY(floats(arena, dropped, count));
    cuda::lora_dropout(x, count, dropout_seed, m.index, dropout, dropped, stream);
    out = dropped;
    return {};
}

Status CudaLoraModel::Impl::adapter_down(const DeviceModule& m, const float* x, int64_t rows, const float*& lora_x, float*& u) {
    const int64_t r = adapter->config().rank;
    MWB_TRY(dropout_input(m, x, rows * m.in, scratch, lora_x));
    MWB_TRY(floats(scratch, u, rows * r));
    cuda::Blas::RowMajorFp32 down;
    down.transpose_b = true;
    down.m = rows, down.n = r, down.k = m.in;
    down.a = lora_x, down.lda = m.in, down.b = m.a, down.ldb = m.in, down.c = u, down.ldc = r;
    return blas->product_fp32(down);
}

Status CudaLoraModel::Impl::project(const std::string& name, const LinearWeight& w, const float* x, int64_t rows, float*& y) {
    const int64_t in = w.in_features, out = w.out_features;
    MWB_TRY(floats(*tape_arena, y, rows * out));
    MWB_TRY(frozen_forward(matrix(w), in, out, x, rows, y));
    if (w.bias) cuda::add_bias_rows(y, rows, out, vector(*w.bias), stream);
    auto found = modules.find(name);
    if (found == modules.end()) return {};
    const DeviceModule& m = found->second;
    const int64_t r = adapter->config().rank;
    const float* lora_x = x;
    float* u = nullptr;
    MWB_TRY(adapter_down(m, x, rows, lora_x, u));
    cuda::Blas::RowMajorFp32 up;  // y += s·u·Bᵀ
    up.transpose_b = true, up.accumulate = true;
    up.m = rows, up.n = out, up.k = r, up.alpha = scale;
    up.a = u, up.lda = r, up.b = m.b, up.ldb = r, up.c = y, up.ldc = out;
    return blas->product_fp32(up);
}

Status CudaLoraModel::Impl::project_backward(const std::string& name, const LinearWeight& w, const float* x, const float* dy, int64_t rows,
                                             float* dx) {
    const int64_t in = w.in_features, out = w.out_features;
    MWB_TRY(frozen_backward(matrix(w), in, out, dy, rows, dx));
    auto found = modules.find(name);
    if (found == modules.end()) return {};
    const DeviceModule& m = found->second;
    const int64_t r = adapter->config().rank;
    const float* lora_x = x;
    float *u = nullptr, *dy_b = nullptr;
    MWB_TRY(adapter_down(m, x, rows, lora_x, u));
    MWB_TRY(floats(scratch, dy_b, rows * r));
    cuda::Blas::RowMajorFp32 p;  // dy_b = dy·B
    p.m = rows, p.n = r, p.k = out;
    p.a = dy, p.lda = out, p.b = m.b, p.ldb = r, p.c = dy_b, p.ldc = r;
    MWB_TRY(blas->product_fp32(p));
    float* d_lora_x = dx;
    if (dropout > 0) MWB_TRY(zeros(scratch, d_lora_x, rows * in));
    p = {};  // d(lora x) += s·dy_b·A
    p.accumulate = true;
    p.m = rows, p.n = in, p.k = r, p.alpha = scale;
    p.a = dy_b, p.lda = r, p.b = m.a, p.ldb = in, p.c = d_lora_x, p.ldc = in;
    MWB_TRY(blas->product_fp32(p));
    if (dropout > 0) cuda::lora_dropout_backward_add(d_lora_x, rows * in, dropout_seed, m.index, dropout, dx, stream);
    if (!want_gradients) return {};
    p = {};  // dB += s·dyᵀ·u
    p.transpose_a = true, p.accumulate = true;
    p.m = out, p.n = r, p.k = rows, p.alpha = scale;
    p.a = dy, p.lda = out, p.b = u, p.ldb = r, p.c = m.d_b, p.ldc = r;
    MWB_TRY(blas->product_fp32(p));
    p = {};  // dA += s·dy_bᵀ·x
    p.transpose_a = true, p.accumulate = true;
    p.m = r, p.n = in, p.k = rows, p.alpha = scale;
    p.a = dy_b, p.lda = r, p.b = lora_x, p.ldb = in, p.c = m.d_a, p.ldc = in;
    return blas->product_fp32(p);
}

Status CudaLoraModel::Impl::mlp_forward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, float*& gate,
                                        float*& up, float*& act, float*& out) {
    MWB_TRY(project(prefix + ".gate_proj", w.gate_proj, x, rows, gate));
    MWB_TRY(project(prefix + ".up_proj", w.up_proj, x, rows, up));
    const int64_t count = rows * w.gate_proj.out_features;
    MWB_TRY(floats(*tape_arena, act, count));
    cuda::swiglu_forward(gate, up, count, act, stream);
    return project(prefix + ".down_proj", w.down_proj, act, rows, out);
}

Status CudaLoraModel::Impl::mlp_backward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, const float* gate,
                                         const float* up, const float* act, const float* d_out, float*& d_x) {
    const int64_t count = rows * w.gate_proj.out_features;
    float *d_act = nullptr, *d_gate = nullptr, *d_up = nullptr;
    MWB_TRY(zeros(scratch, d_act, count));
    MWB_TRY(project_backward(prefix + ".down_proj", w.down_proj, act, d_out, rows, d_act));
    MWB_TRY(floats(scratch, d_gate, count));
    MWB_TRY(floats(scratch, d_up, count));
    cuda::swiglu_backward(gate, up, d_act, count, d_gate, d_up, stream);
    MWB_TRY(zeros(scratch, d_x, rows * w.gate_proj.in_features));
    MWB_TRY(project_backward(prefix + ".gate_proj", w.gate_proj, x, d_gate, rows, d_x));
    return project_backward(prefix + ".up_proj", w.up_proj, x, d_up, rows, d_x);
}

Status CudaLoraModel::Impl::moe_forward(int64_t layer, const MoeWeights& w, LayerTape& tape, const std::vector<int32_t>* imposed,
                                        float*& out) {
    const int64_t hidden = config.hidden_size, experts = w.config.n_routed_experts, k = w.config.experts_per_token;
    const std::string p = layer_prefix(layer) + ".mlp";
    DeviceArena& arena = *tape_arena;
    float* logits = nullptr;
    MWB_TRY(floats(scratch, logits, t * experts));
    cuda::Blas::RowMajorFp32 router;
    router.transpose_b = true;
    router.m = t, router.n = experts, router.k = hidden;
    router.a = tape.h2, router.lda = hidden, router.b = vectors.at(&w.router), router.ldb = hidden, router.c = logits, router.ldc = experts;
    MWB_TRY(blas->product_fp32(router));
    std::vector<float> host_logits(size_t(t * experts));
    MWB_CUDA_TRY(cudaMemcpyAsync(host_logits.data(), logits, host_logits.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    MWB_CUDA_TRY(cudaStreamSynchronize(stream));

    // The choice on the host, as lora_model.cpp's moe_forward makes it (route_token, imposed or replayed experts).
    auto bias = score_biases.find(&w.router);
    std::vector<float> scores(size_t(t * experts)), weights(size_t(t * k));
    tape.chosen.assign(size_t(t * k), 0);
    std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(experts)), slots(static_cast<size_t>(experts));
    std::vector<std::vector<float>> expert_weights(static_cast<size_t>(experts));
    for (int64_t i = 0; i < t; ++i) {
        int32_t* chosen = tape.chosen.data() + i * k;
        float* weight = weights.data() + i * k;
        route_token(w.config, host_logits.data() + i * experts, bias == score_biases.end() ? nullptr : bias->second.data(), chosen, weight,
                    scores.data() + i * experts);
        const int32_t* given = imposed ? imposed->data() + i * k : replay ? routing->data() + routing_position : nullptr;
        if (given) {  // experts chosen before, weighted as route_token weights its own choice
            std::copy_n(given, k, chosen);
            weigh_experts(w.config, scores.data() + i * experts, chosen, weight);
        } else if (routing) {
            routing->insert(routing->end(), chosen, chosen + k);
        }
        if (!imposed) routing_position += size_t(k);
        for (int64_t j = 0; j < k; ++j) {
            const auto e = size_t(chosen[j]);
            tokens[e].push_back(int32_t(i));
            slots[e].push_back(int32_t(i * k + j));
            expert_weights[e].push_back(weight[j]);
        }
    }
    MWB_TRY(upload(arena, tape.scores, scores));
    MWB_TRY(upload(arena, tape.weights, weights));
    MWB_TRY(integers(arena, tape.chosen_device, tape.chosen));

    MWB_TRY(zeros(arena, out, t * hidden));
    tape.experts.assign(size_t(experts), {});
    for (int64_t e = 0; e < experts; ++e) {
        if (tokens[size_t(e)].empty()) continue;
        LayerTape::Expert& x = tape.experts[size_t(e)];
        x.rows = int64_t(tokens[size_t(e)].size());
        MWB_TRY(integers(arena, x.tokens, tokens[size_t(e)]));
        MWB_TRY(integers(arena, x.slots, slots[size_t(e)]));
        MWB_TRY(upload(arena, x.weights, expert_weights[size_t(e)]));
        MWB_TRY(floats(arena, x.input, x.rows * hidden));
        cuda::gather_rows_fp32(tape.h2, hidden, x.tokens, nullptr, x.rows, x.input, stream);
        MWB_TRY(mlp_forward(p + ".experts." + std::to_string(e), w.experts[size_t(e)], x.input, x.rows, x.gate, x.up, x.act, x.out));
        cuda::scatter_add_rows(x.out, hidden, x.tokens, x.weights, x.rows, out, stream);
    }
    if (w.shared) {
        float* shared = nullptr;
        MWB_TRY(mlp_forward(p + ".shared_experts", *w.shared, tape.h2, t, tape.gate, tape.up, tape.act, shared));
        cuda::add_into(out, shared, t * hidden, stream);
    }
    return {};
}

Status CudaLoraModel::Impl::moe_backward(int64_t layer, const MoeWeights& w, const LayerTape& tape, const float* d_out, float*& d_h2) {
    const int64_t hidden = config.hidden_size, experts = w.config.n_routed_experts, k = w.config.experts_per_token;
    const std::string p = layer_prefix(layer) + ".mlp";
    MWB_TRY(zeros(scratch, d_h2, t * hidden));
    if (w.shared) {
        float* d = nullptr;
        MWB_TRY(mlp_backward(p + ".shared_experts", *w.shared, tape.h2, t, tape.gate, tape.up, tape.act, d_out, d));
        cuda::add_into(d_h2, d, t * hidden, stream);
    }
    // Each expert: its output was weighted by the router, so the weight gets d_out·output and the expert d_out·weight.
    float* d_weights = nullptr;
    MWB_TRY(zeros(scratch, d_weights, t * k));
    for (int64_t e = 0; e < experts; ++e) {
        const LayerTape::Expert& x = tape.experts[size_t(e)];
        if (x.rows == 0) continue;
        float *d_expert_out = nullptr, *d_input = nullptr;
        MWB_TRY(floats(scratch, d_expert_out, x.rows * hidden));
        cuda::gather_rows_fp32(d_out, hidden, x.tokens, x.weights, x.rows, d_expert_out, stream);
        cuda::row_dots(d_out, x.tokens, x.out, hidden, x.rows, d_weights, x.slots, stream);
        MWB_TRY(mlp_backward(p + ".experts." + std::to_string(e), w.experts[size_t(e)], x.input, x.rows, x.gate, x.up, x.act, d_expert_out,
                             d_input));
        cuda::scatter_add_rows(d_input, hidden, x.tokens, nullptr, x.rows, d_h2, stream);
    }
    // The router: from the weights' gradient to its logits, then through the (frozen, fp32) router to the input.
    float* d_logits = nullptr;
    MWB_TRY(floats(scratch, d_logits, t * experts));
    cuda::router_backward(tape.scores, tape.chosen_device, d_weights, t, cuda::router_params(w.config), d_logits, stream);
    cuda::Blas::RowMajorFp32 back;
    back.accumulate = true;
    back.m = t, back.n = hidden, back.k = experts;
    back.a = d_logits, back.lda = experts, back.b = vectors.at(&w.router), back.ldb = hidden, back.c = d_h2, back.ldc = hidden;
    return blas->product_fp32(back);
}

Status CudaLoraModel::Impl::layer_forward(int64_t l, LayerTape& lt, const std::vector<int32_t>* imposed, float*& x_out) {
    const DecoderLayer& layer = graph->layers[size_t(l)];
    const int64_t hidden = config.hidden_size, count = t * hidden;
    DeviceArena& arena = *tape_arena;
    MWB_TRY(floats(arena, lt.h1, count));
    MWB_TRY(floats(arena, lt.inv_in, t));
    cuda::rms_norm_forward(lt.x_in, hidden, vector(layer.input_norm.weight), t, hidden, eps(), lt.h1, lt.inv_in, stream);
    float* attention = nullptr;
    MWB_TRY(std::visit([&](const auto& w) { return attention_forward(l, w, lt, attention); }, layer.attention));
    MWB_TRY(floats(arena, lt.x_mid, count));
    MWB_CUDA_TRY(cudaMemcpyAsync(lt.x_mid, lt.x_in, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    cuda::add_into(lt.x_mid, attention, count, stream);
    MWB_TRY(floats(arena, lt.h2, count));
    MWB_TRY(floats(arena, lt.inv_mid, t));
    cuda::rms_norm_forward(lt.x_mid, hidden, vector(layer.post_attention_norm.weight), t, hidden, eps(), lt.h2, lt.inv_mid, stream);
    float* feed_forward = nullptr;
    if (const auto* mlp = std::get_if<MlpWeights>(&layer.feed_forward))
        MWB_TRY(mlp_forward(layer_prefix(l) + ".mlp", *mlp, lt.h2, t, lt.gate, lt.up, lt.act, feed_forward));
    else
        MWB_TRY(moe_forward(l, std::get<MoeWeights>(layer.feed_forward), lt, imposed, feed_forward));
    MWB_TRY(floats(arena, x_out, count));
    MWB_CUDA_TRY(cudaMemcpyAsync(x_out, lt.x_mid, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    cuda::add_into(x_out, feed_forward, count, stream);
    return {};
}

Status CudaLoraModel::Impl::bind_adapter(const train::LoraAdapter& lora) {
    adapter = &lora;
    modules.clear();
    const int64_t r = lora.config().rank;
    for (size_t i = 0; i < lora.modules().size(); ++i) {
        const train::LoraModule& source = lora.modules()[i];
        DeviceModule m;
        m.index = int64_t(i), m.in = source.in_features, m.out = source.out_features;
        float *a = nullptr, *b = nullptr;
        MWB_TRY(upload(keep, a, source.a));
        MWB_TRY(upload(keep, b, source.b));
        m.a = a, m.b = b;
        if (want_gradients) {
            MWB_TRY(zeros(keep, m.d_a, r * m.in));
            MWB_TRY(zeros(keep, m.d_b, m.out * r));
        }
        modules[source.name] = m;
    }
    return {};
}

Result<double> CudaLoraModel::Impl::row_loss(const train::LoraAdapter& lora, std::span<const int32_t> ids, std::span<const int64_t> labels,
                                             float gradient_scale, train::LoraGradients* gradients, std::vector<float>* logits_out,
                                             std::vector<int32_t>* routing_record) {
    const int64_t count = int64_t(ids.size()), hidden = config.hidden_size, vocab = config.vocab_size;
    if (labels.size() != ids.size())
        return make_error("a row has " + std::to_string(ids.size()) + " tokens but " + std::to_string(labels.size()) + " labels");
    if (count == 0) return 0.0;
    for (int32_t id : ids)
        if (id < 0 || id >= vocab) return make_error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab));
    for (size_t i = 1; i < labels.size(); ++i)
        if (labels[i] != train::kIgnoredLabel && (labels[i] < 0 || labels[i] >= vocab))
            return make_error("label " + std::to_string(labels[i]) + " is outside the vocabulary of " + std::to_string(vocab));
    if (routing_record && !routing_record->empty() && config.moe &&
        routing_record->size() != graph->moe_layers().size() * size_t(count * config.moe->experts_per_token))
        return make_error("the routing to replay was recorded for another row");
    MWB_CUDA_TRY(cudaSetDevice(device));

    keep.reset();
    layer.reset();
    scratch.reset();
    t = count;
    want_gradients = gradients != nullptr;
    routing = routing_record;
    replay = routing && !routing->empty();
    routing_position = 0;
    scale = float(lora.config().scale());
    dropout = dropout_seed != 0 ? lora.config().dropout : 0.0;
    MWB_TRY(bind_adapter(lora));

    int32_t *tokens = nullptr, *row_positions = nullptr;
    MWB_TRY(integers(keep, tokens, std::vector<int32_t>(ids.begin(), ids.end())));
    std::vector<int32_t> numbers(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) numbers[size_t(i)] = int32_t(i);
    MWB_TRY(integers(keep, row_positions, numbers));
    positions = row_positions;
    auto label_memory = keep.take(labels.size() * sizeof(int64_t), "the row's labels");
    if (!label_memory) return label_memory.error();
    auto* device_labels = static_cast<int64_t*>(*label_memory);
    MWB_CUDA_TRY(cudaMemcpyAsync(device_labels, labels.data(), labels.size() * sizeof(int64_t), cudaMemcpyHostToDevice, stream));

    float* x = nullptr;
    MWB_TRY(floats(keep, x, count * hidden));
    cuda::embed_tokens(embedding, tokens, count, hidden, x, stream);
    const bool recompute = checkpointing && gradients;
    std::vector<LayerTape> tapes(graph->layers.size());
    for (size_t l = 0; l < graph->layers.size(); ++l) {
        scratch.reset();
        if (recompute) layer.reset();  // the previous layer's output was copied into this one's x_in first
        tape_arena = recompute ? &layer : &keep;
        LayerTape& lt = tapes[l];
        MWB_TRY(floats(keep, lt.x_in, count * hidden));
        MWB_CUDA_TRY(cudaMemcpyAsync(lt.x_in, x, size_t(count * hidden) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
        MWB_TRY(layer_forward(int64_t(l), lt, nullptr, x));
        if (recompute) {  // only the layer's input and its experts stay; the rest was in the layer arena
            LayerTape kept;
            kept.x_in = lt.x_in;
            kept.chosen = std::move(lt.chosen);
            lt = std::move(kept);
        }
    }
    float *x_final = nullptr, *h_final = nullptr, *inv_final = nullptr, *logits = nullptr, *d_logits = nullptr;
    MWB_TRY(floats(keep, x_final, count * hidden));
    MWB_CUDA_TRY(cudaMemcpyAsync(x_final, x, size_t(count * hidden) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    MWB_TRY(floats(keep, h_final, count * hidden));
    MWB_TRY(floats(keep, inv_final, count));
    cuda::rms_norm_forward(x_final, hidden, vector(graph->final_norm.weight), count, hidden, eps(), h_final, inv_final, stream);
    MWB_TRY(floats(keep, logits, count * vocab));
    MWB_TRY(frozen_forward(matrix(graph->lm_head), hidden, vocab, h_final, count, logits));
    if (gradients) MWB_TRY(zeros(keep, d_logits, count * vocab));
    auto loss_memory = keep.take(size_t(count + 1) * sizeof(double), "the row's losses");
    if (!loss_memory) return loss_memory.error();
    auto* losses = static_cast<double*>(*loss_memory);
    cuda::causal_lm_loss(logits, device_labels, 1, count, vocab, gradient_scale, d_logits, losses, losses + count, stream);
    double loss = 0;
    MWB_CUDA_TRY(cudaMemcpyAsync(&loss, losses + count, sizeof(double), cudaMemcpyDeviceToHost, stream));
    if (logits_out) {
        logits_out->resize(size_t(count * vocab));
        MWB_CUDA_TRY(cudaMemcpyAsync(logits_out->data(), logits, logits_out->size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    }
    MWB_CUDA_TRY(cudaStreamSynchronize(stream));
    if (!gradients) return loss;

    float *d_h = nullptr, *d_x = nullptr;
    MWB_TRY(zeros(keep, d_h, count * hidden));
    MWB_TRY(frozen_backward(matrix(graph->lm_head), hidden, vocab, d_logits, count, d_h));
    MWB_TRY(zeros(keep, d_x, count * hidden));
    cuda::rms_norm_backward_add(x_final, hidden, inv_final, vector(graph->final_norm.weight), d_h, count, hidden, d_x, stream);
    for (size_t l = graph->layers.size(); l-- > 0;) {
        const DecoderLayer& decoder = graph->layers[l];
        scratch.reset();
        if (recompute) {
            // The same forward again, on the same input and experts: the same tape, bit for bit.
            layer.reset();
            tape_arena = &layer;
            LayerTape full;
            full.x_in = tapes[l].x_in;
            const std::vector<int32_t> chosen = tapes[l].chosen;
            float* unused = nullptr;
            MWB_TRY(layer_forward(int64_t(l), full, chosen.empty() ? nullptr : &chosen, unused));
            tapes[l] = std::move(full);
        }
        const LayerTape& lt = tapes[l];
        float *d_h2 = nullptr, *d_h1 = nullptr;
        if (const auto* mlp = std::get_if<MlpWeights>(&decoder.feed_forward))
            MWB_TRY(mlp_backward(layer_prefix(int64_t(l)) + ".mlp", *mlp, lt.h2, count, lt.gate, lt.up, lt.act, d_x, d_h2));
        else
            MWB_TRY(moe_backward(int64_t(l), std::get<MoeWeights>(decoder.feed_forward), lt, d_x, d_h2));
        cuda::rms_norm_backward_add(lt.x_mid, hidden, lt.inv_mid, vector(decoder.post_attention_norm.weight), d_h2, count, hidden, d_x, stream);
        MWB_TRY(std::visit([&](const auto& w) { return attention_backward(int64_t(l), w, lt, d_x, d_h1); }, decoder.attention));
        cuda::rms_norm_backward_add(lt.x_in, hidden, lt.inv_in, vector(decoder.input_norm.weight), d_h1, count, hidden, d_x, stream);
    }

    // The adapter's gradients back to the host, added to the caller's.
    const int64_t r = lora.config().rank;
    std::vector<std::vector<float>> d_a(lora.modules().size()), d_b(lora.modules().size());
    for (const auto& [name, m] : modules) {
        d_a[size_t(m.index)].resize(size_t(r * m.in));
        d_b[size_t(m.index)].resize(size_t(m.out * r));
        MWB_CUDA_TRY(cudaMemcpyAsync(d_a[size_t(m.index)].data(), m.d_a, d_a[size_t(m.index)].size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
        MWB_CUDA_TRY(cudaMemcpyAsync(d_b[size_t(m.index)].data(), m.d_b, d_b[size_t(m.index)].size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
    }
    MWB_CUDA_TRY(cudaStreamSynchronize(stream));
    MWB_CUDA_TRY(cudaGetLastError());
    for (size_t i = 0; i < d_a.size(); ++i) {
        for (size_t j = 0; j < d_a[i].size(); ++j) gradients->a[i][j] += d_a[i][j];
        for (size_t j = 0; j < d_b[i].size(); ++j) gradients->b[i][j] += d_b[i][j];
    }
    return loss;
}

CudaLoraModel::CudaLoraModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaLoraModel::~CudaLoraModel() = default;

Result<std::unique_ptr<CudaLoraModel>> CudaLoraModel::create(std::shared_ptr<const ModelGraph> graph, int device) {
    if (!graph) return make_error("no model to train");
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        cudaGetLastError();
        return make_error("no CUDA device is available for training");
    }
    if (device < 0 || device >= devices)
        return make_error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(devices) + " found)");
    MWB_CUDA_TRY(cudaSetDevice(device));
    auto impl = std::make_unique<Impl>(std::move(graph), device);
    MWB_CUDA_TRY(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
    MWB_TRY(impl->upload_weights());
    auto workspace = impl->weights.allocate(cuda::kCublasWorkspaceBytes, "the cuBLAS workspace");
    if (!workspace) return workspace.error();
    impl->blas = std::make_unique<cuda::Blas>();
    MWB_TRY(impl->blas->initialise(impl->stream));
    MWB_TRY(impl->blas->set_workspace(*workspace, cuda::kCublasWorkspaceBytes));
    return std::unique_ptr<CudaLoraModel>(new CudaLoraModel(std::move(impl)));
}

Result<double> CudaLoraModel::row_loss(const train::LoraAdapter& adapter, std::span<const int32_t> ids, std::span<const int64_t> labels,
                                       float gradient_scale, train::LoraGradients* gradients, std::vector<float>* logits,
                                       std::vector<int32_t>* routing) {
    return impl_->row_loss(adapter, ids, labels, gradient_scale, gradients, logits, routing);
}

const ModelGraph& CudaLoraModel::graph() const { return *impl_->graph; }
void CudaLoraModel::set_gradient_checkpointing(bool enabled) { impl_->checkpointing = enabled; }
void CudaLoraModel::set_dropout_seed(uint64_t seed) { impl_->dropout_seed = seed; }
size_t CudaLoraModel::weight_bytes() const { return impl_->weights.bytes(); }
size_t CudaLoraModel::activation_bytes() const { return impl_->keep.bytes() + impl_->layer.bytes() + impl_->scratch.bytes(); }

}  // namespace mwb
