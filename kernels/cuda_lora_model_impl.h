// CudaLoraModel's implementation, shared by the files that define its parts: cuda_lora_model.cpp (weights, the
// arenas, the adapter's products, the row's forward and backward, the feed-forward blocks) and
// cuda_lora_attention.cpp (MLA and GQA attention forward and backward). Each function mirrors the one of the same
// name in engine/train/lora_model.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/train/lora_adapter.h"
#include "kernels/blas.h"
#include "kernels/cuda_lora_model.h"
#include "kernels/device_weights.h"
#include "kernels/train_kernels.h"

namespace mwb {

// Device memory handed out in order and taken back all at once: the activations of a row (or of a layer, or of
// a layer's backward pass) without an allocation per tensor. Blocks are kept for the next row.
class DeviceArena {
public:
    DeviceArena() = default;
    DeviceArena(const DeviceArena&) = delete;
    DeviceArena& operator=(const DeviceArena&) = delete;
    ~DeviceArena();

    Result<void*> take(size_t bytes, const std::string& what);
    void reset();  // everything taken is free again (the caller has synchronised the work that used it)
    size_t bytes() const;

private:
    struct Block {
        void* base = nullptr;
        size_t size = 0, used = 0;
    };
    std::vector<Block> blocks_;
    size_t current_ = 0;
};

struct CudaLoraModel::Impl {
    // What the backward pass needs of one decoder layer's forward pass (lora_model.cpp's LayerTape, on the device).
    struct LayerTape {
        float *x_in = nullptr, *inv_in = nullptr, *h1 = nullptr;
        float *qa = nullptr, *inv_qa = nullptr, *qa_normed = nullptr, *q = nullptr;
        float *kv_a = nullptr, *inv_latent = nullptr, *latent = nullptr, *k_rope = nullptr, *kv = nullptr;
        float *k = nullptr, *v = nullptr;
        float* probabilities = nullptr;  // [heads, T, T], zero above the diagonal
        float* attended = nullptr;
        float *x_mid = nullptr, *inv_mid = nullptr, *h2 = nullptr;
        float *gate = nullptr, *up = nullptr, *act = nullptr;  // the dense or shared MLP
        float *scores = nullptr, *weights = nullptr;            // [T, experts], [T, k]
        int32_t* chosen_device = nullptr;                      // [T, k]
        std::vector<int32_t> chosen;                            // the same on the host
        struct Expert {
            int64_t rows = 0;
            int32_t *tokens = nullptr, *slots = nullptr;  // which token, which of its t·k choices
            float* weights = nullptr;                     // the router's weight of each row
            float *input = nullptr, *gate = nullptr, *up = nullptr, *act = nullptr, *out = nullptr;
        };
        std::vector<Expert> experts;
    };

    // The adapter of the current row on the device, and its gradients.
    struct DeviceModule {
        const float *a = nullptr, *b = nullptr;  // [rank, in], [out, rank]
        float *d_a = nullptr, *d_b = nullptr;
        int64_t index = 0, in = 0, out = 0;
    };

    std::shared_ptr<const ModelGraph> graph;
    const ModelConfig& config;
    int device = 0;
    cudaStream_t stream = nullptr;
    std::unique_ptr<cuda::Blas> blas;
    cuda::DeviceMemory weights;
    std::unordered_map<const void*, const cuda::bf16*> matrices;  // frozen linear weights by LinearWeight
    std::unordered_map<const void*, const float*> vectors;        // norms, biases and routers (fp32) by tensor
    std::unordered_map<const void*, std::vector<float>> score_biases;  // the routers' correction biases, on the host
    const cuda::bf16* embedding = nullptr;
    const int32_t* positions = nullptr;  // 0, 1, 2, …: RoPE's positions of a row
    int64_t max_positions = 0;
    cuda::RopeParams rope;
    DeviceArena keep, layer, scratch;  // the row's, one recomputed layer's, one layer's backward temporaries
    DeviceArena* tape_arena = &keep;   // where the forward pass puts its tape

    bool checkpointing = false;
    uint64_t dropout_seed = 0;

    // Per row.
    int64_t t = 0;
    float scale = 1.0f;  // the adapter's
    double dropout = 0;
    const train::LoraAdapter* adapter = nullptr;
    std::unordered_map<std::string, DeviceModule> modules;
    bool want_gradients = false;
    std::vector<int32_t>* routing = nullptr;
    bool replay = false;
    size_t routing_position = 0;

    Impl(std::shared_ptr<const ModelGraph> graph_, int device_) : graph(std::move(graph_)), config(graph->config), device(device_) {}
    ~Impl();

    Status upload_weights();
    float eps() const { return float(config.rms_norm_eps); }
    static std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer); }
    const cuda::bf16* matrix(const LinearWeight& w) const { return matrices.at(&w); }
    const float* vector(const TensorView& v) const { return vectors.at(&v); }

    Status floats(DeviceArena& arena, float*& out, int64_t count);
    Status zeros(DeviceArena& arena, float*& out, int64_t count);
    Status integers(DeviceArena& arena, int32_t*& out, const std::vector<int32_t>& values);
    Status upload(DeviceArena& arena, float*& out, const std::vector<float>& values);

    // y = x·Wᵀ + bias (+ s·(x·Aᵀ)·Bᵀ when the adapter has this module), y taken from the tape arena.
    Status project(const std::string& name, const LinearWeight& weight, const float* x, int64_t rows, float*& y);
    // dx += dy·W (+ s·(dy·B)·A), and the adapter's gradients (lora_model.cpp's project_backward).
    Status project_backward(const std::string& name, const LinearWeight& weight, const float* x, const float* dy, int64_t rows, float* dx);
    // lora_x = x after the adapter's dropout, and u = lora_x·Aᵀ [rows, rank], in the scratch arena.
    Status adapter_down(const DeviceModule& m, const float* x, int64_t rows, const float*& lora_x, float*& u);
    // x with the adapter's dropout applied (in the scratch or tape arena), or x itself without dropout.
    Status dropout_input(const DeviceModule& m, const float* x, int64_t count, DeviceArena& arena, const float*& out);
    // The frozen weight's products: y = bf16(x)·Wᵀ in fp32, and dx += bf16(dy)·W.
    Status frozen_forward(const cuda::bf16* w, int64_t in, int64_t out, const float* x, int64_t rows, float* y);
    Status frozen_backward(const cuda::bf16* w, int64_t in, int64_t out, const float* dy, int64_t rows, float* dx);

    Status attention_forward(int64_t layer, const MlaWeights& w, LayerTape& tape, float*& out);
    Status attention_backward(int64_t layer, const MlaWeights& w, const LayerTape& tape, const float* d_out, float*& d_h1);
    Status attention_forward(int64_t layer, const GqaWeights& w, LayerTape& tape, float*& out);
    Status attention_backward(int64_t layer, const GqaWeights& w, const LayerTape& tape, const float* d_out, float*& d_h1);
    Status mlp_forward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, float*& gate, float*& up, float*& act,
                       float*& out);
    Status mlp_backward(const std::string& prefix, const MlpWeights& w, const float* x, int64_t rows, const float* gate, const float* up,
                        const float* act, const float* d_out, float*& d_x);
    Status moe_forward(int64_t layer, const MoeWeights& w, LayerTape& tape, const std::vector<int32_t>* imposed, float*& out);
    Status moe_backward(int64_t layer, const MoeWeights& w, const LayerTape& tape, const float* d_out, float*& d_h2);
    Status layer_forward(int64_t layer, LayerTape& tape, const std::vector<int32_t>* imposed, float*& x_out);

    Result<double> row_loss(const train::LoraAdapter& adapter, std::span<const int32_t> ids, std::span<const int64_t> labels,
                            float gradient_scale, train::LoraGradients* gradients, std::vector<float>* logits,
                            std::vector<int32_t>* routing);
    Status bind_adapter(const train::LoraAdapter& adapter);
};

}  // namespace mwb
