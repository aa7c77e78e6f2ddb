// The model's weights on the device, in the layout the kernels want: projections that read the same input are
// stacked into one matrix (MLA q_a|kv_a or q|kv_a, GQA q|k|v, MLP gate|up), the experts of a layer back to back,
// norms in fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "kernels/kernels.h"

namespace mwb::cuda {

// Device allocations freed together; a failed allocation reports the bytes asked for and the bytes free.
class DeviceMemory {
public:
    DeviceMemory() = default;
    DeviceMemory(const DeviceMemory&) = delete;
    DeviceMemory& operator=(const DeviceMemory&) = delete;
    ~DeviceMemory() { release(); }

    Result<void*> allocate(size_t bytes, const std::string& what);
    void release();
    size_t bytes() const { return bytes_; }

private:
    std::vector<void*> blocks_;
    size_t bytes_ = 0;
};

Error cuda_error(cudaError_t error, const std::string& what);
#define MWB_CUDA_TRY(expr)                                                 \
    do {                                                                   \
        const cudaError_t mwb_cuda_status_ = (expr);                       \
        if (mwb_cuda_status_ != cudaSuccess) return ::mwb::cuda::cuda_error(mwb_cuda_status_, #expr); \
    } while (0)

struct DeviceLinear {
    DeviceMatrix matrix;
    const float* bias = nullptr;  // fp32 [rows]
};

struct DeviceMla {
    DeviceLinear qkv_a;           // [q_width + lora + rope, hidden]: q_a_proj (or q_proj) stacked over kv_a_proj
    int64_t q_width = 0;          // q_lora_rank, or heads·(nope+rope) without q_lora
    const float* q_a_norm = nullptr;
    DeviceLinear q_b;             // only with q_lora
    const float* kv_a_norm = nullptr;
    const bf16* kv_b = nullptr;   // [heads·(nope+v), lora], always bf16: the absorbed decode multiplies by it directly
    DeviceLinear o;
};

struct DeviceGqa {
    DeviceLinear qkv;  // [(heads + 2·kv_heads)·dim, hidden], biases stacked likewise
    DeviceLinear o;
};

struct DeviceMlp {
    DeviceLinear gate_up;  // [2·inner, hidden]
    DeviceLinear down;     // [hidden, inner]
    int64_t inner = 0;
};

struct DeviceMoe {
    DeviceMatrix router;  // bf16 [experts, hidden]
    RouterParams params;
    DeviceMatrix experts_gate_up;  // experts × [2·inner, hidden]
    DeviceMatrix experts_down;     // experts × [hidden, inner]
    int64_t inner = 0;
    bool has_shared = false;
    DeviceMlp shared;
    int64_t record = 0;  // index among the MoE layers (routing records)
};

struct DeviceLayer {
    const float* input_norm = nullptr;
    const float* post_attention_norm = nullptr;
    bool mla = false;
    DeviceMla attention_mla;
    DeviceGqa attention_gqa;
    bool moe = false;
    DeviceMlp mlp;
    DeviceMoe experts;
};

struct DeviceModel {
    const bf16* embedding = nullptr;  // [vocab, hidden]
    std::vector<DeviceLayer> layers;
    const float* final_norm = nullptr;
    DeviceLinear lm_head;
    const float* rope_inverse_frequency = nullptr;
    size_t dequantise_scratch_bytes = 0;  // largest bf16 image a quantised GEMM needs
    QuantisationError worst_quantisation_error;
    int64_t moe_layers = 0;
};

// The router kernels' parameters of a MoE layer (the bias is left for the caller to upload).
RouterParams router_params(const MoeConfig& config);

// Checks that the model's dimensions suit the kernels (multiples of 8, router limits).
Status check_cuda_support(const ModelConfig& config);

// Uploads every weight into `memory`; on failure `memory` may hold part of it (the caller releases it).
Result<DeviceModel> upload_model(const ModelGraph& graph, WeightQuantisation quantisation, DeviceMemory& memory, cudaStream_t stream);

}  // namespace mwb::cuda
