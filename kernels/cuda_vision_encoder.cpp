// CudaVisionEncoder: the tower and aligner uploaded once (q|k|v stacked per layer), a workspace sized for one
// image, and a forward that follows siglip_forward and VisionEncoder::encode step by step on its own stream.
// The residual stream stays fp32 between layers, as on the CPU; every matrix product runs in cuBLAS.
#include "kernels/cuda_vision_encoder.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/io/dtype.h"
#include "engine/runtime/cpu/cpu_ops.h"
#include "engine/vision/vision_encoder.h"
#include "kernels/blas.h"
#include "kernels/cuda_planning.h"
#include "kernels/device_weights.h"
#include "kernels/vision_kernels.h"

namespace mwb {

namespace {

using cuda::bf16;

struct DeviceDense {
    const bf16* weight = nullptr;  // [out, in]
    const float* bias = nullptr;   // [out]
    int64_t out = 0, in = 0;
};

struct DeviceLayerNorm {
    const float* weight = nullptr;
    const float* bias = nullptr;
};

struct DeviceSiglipLayer {
    DeviceLayerNorm norm1, norm2;
    DeviceDense qkv;  // q | k | v stacked: one GEMM over the normed rows
    DeviceDense out, fc1, fc2;
};

// Host data into device allocations, with blocking copies (load time only).
class Uploader {
public:
    explicit Uploader(cuda::DeviceMemory& memory) : memory_(memory) {}

    template <class T>
    Result<T*> buffer(size_t count, const std::string& what) {
        auto pointer = memory_.allocate(count * sizeof(T), what);
        if (!pointer) return pointer.error();
        return static_cast<T*>(*pointer);
    }

    Result<const float*> floats(const std::vector<float>& values, const std::string& what) {
        auto target = buffer<float>(values.size(), what);
        if (!target) return target.error();
        MWB_CUDA_TRY(cudaMemcpy(*target, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice));
        return static_cast<const float*>(*target);
    }

    Result<DeviceLayerNorm> layer_norm(const LayerNormWeights& norm, const std::string& what) {
        auto weight = floats(norm.weight, what + " weight");
        if (!weight) return weight.error();
        auto bias = floats(norm.bias, what + " bias");
        if (!bias) return bias.error();
        return DeviceLayerNorm{*weight, *bias};
    }

    // The rows of `parts` (which read the same input) stacked into one bf16 matrix, their biases into one vector.
    Result<DeviceDense> dense(std::initializer_list<const DenseWeights*> parts, const std::string& what) {
        DeviceDense dense;
        dense.in = (*parts.begin())->linear.in_features;
        for (const DenseWeights* part : parts) dense.out += part->linear.out_features;
        std::vector<float> values(size_t(dense.out * dense.in)), bias;
        bias.reserve(size_t(dense.out));
        int64_t row = 0;
        for (const DenseWeights* part : parts) {
            cpu::decode_rows(part->linear, 0, part->linear.out_features, values.data() + row * dense.in);
            bias.insert(bias.end(), part->bias.begin(), part->bias.end());
            row += part->linear.out_features;
        }
        std::vector<uint16_t> bits(values.size());
        std::transform(values.begin(), values.end(), bits.begin(), float_to_bf16);
        auto weight = buffer<bf16>(bits.size(), what + " weight");
        if (!weight) return weight.error();
        MWB_CUDA_TRY(cudaMemcpy(*weight, bits.data(), bits.size() * sizeof(uint16_t), cudaMemcpyHostToDevice));
        dense.weight = *weight;
        auto device_bias = floats(bias, what + " bias");
        if (!device_bias) return device_bias.error();
        dense.bias = *device_bias;
        return dense;
    }

private:
    cuda::DeviceMemory& memory_;
};

}  // namespace

struct CudaVisionEncoder::Device {
    ~Device() {
        if (stream) cudaStreamSynchronize(stream);
        blas.reset();
        memory.release();
        if (stream) cudaStreamDestroy(stream);
    }

    Status upload(const VisionWeights& weights, int64_t feature_width);
    Status dense(const DeviceDense& layer, const bf16* input, int64_t rows, bf16* y);
    Status attention(int64_t rows, int64_t heads, int64_t dim);

    int device_index = 0;
    cudaStream_t stream = nullptr;
    std::unique_ptr<cuda::Blas> blas;
    cuda::DeviceMemory memory;

    DeviceDense patch_embedding;
    const float* position_embedding = nullptr;  // [patches, hidden]
    std::vector<DeviceSiglipLayer> layers;
    DeviceLayerNorm post_layernorm;
    DeviceDense aligner_linear1, aligner_linear2;

    // One image's workspace.
    bf16* patches = nullptr;        // [patches, channels·patch·patch]
    float* x = nullptr;             // [patches, hidden], the residual stream
    bf16* normed = nullptr;         // [patches, hidden]
    bf16* qkv = nullptr;            // [patches, 3·hidden]
    float* scores = nullptr;        // [heads, patches, patches]
    bf16* probabilities = nullptr;  // [heads, patches, patches]
    bf16* attended = nullptr;       // [patches, hidden]
    bf16* delta = nullptr;          // [patches, hidden]: attention or MLP output, not yet added to x
    bf16* inner = nullptr;          // [patches, max(intermediate, feature width)]: fc1's and the aligner's inner rows
    float* features = nullptr;      // [patches, feature width]
    void* cublas_workspace = nullptr;
};

Status CudaVisionEncoder::Device::upload(const VisionWeights& weights, int64_t feature_width) {
    const VisionConfig& c = weights.tower.config;
    const int64_t rows = c.patches_per_image(), hidden = c.hidden_size, heads = c.num_heads;
    const int64_t patch_values = c.num_channels * c.patch_size * c.patch_size;
    Uploader up(memory);
    auto assign = [](auto& target, auto&& result) -> Status {
        if (!result) return result.error();
        target = *result;
        return {};
    };
    MWB_TRY(assign(patch_embedding, up.dense({&weights.tower.patch_embedding}, "vision patch embedding")));
    MWB_TRY(assign(position_embedding, up.floats(weights.tower.position_embedding, "vision position embedding")));
    for (size_t l = 0; l < weights.tower.layers.size(); ++l) {
        const SiglipLayer& source = weights.tower.layers[l];
        const std::string name = "vision layer " + std::to_string(l);
        DeviceSiglipLayer layer;
        MWB_TRY(assign(layer.norm1, up.layer_norm(source.layer_norm1, name + " layer_norm1")));
        MWB_TRY(assign(layer.norm2, up.layer_norm(source.layer_norm2, name + " layer_norm2")));
        MWB_TRY(assign(layer.qkv, up.dense({&source.q_proj, &source.k_proj, &source.v_proj}, name + " q|k|v")));
        MWB_TRY(assign(layer.out, up.dense({&source.out_proj}, name + " out_proj")));
        MWB_TRY(assign(layer.fc1, up.dense({&source.fc1}, name + " fc1")));
        MWB_TRY(assign(layer.fc2, up.dense({&source.fc2}, name + " fc2")));
        layers.push_back(layer);
    }
    MWB_TRY(assign(post_layernorm, up.layer_norm(weights.tower.post_layernorm, "vision post_layernorm")));
    MWB_TRY(assign(aligner_linear1, up.dense({&weights.aligner_linear1}, "aligner linear1")));
    MWB_TRY(assign(aligner_linear2, up.dense({&weights.aligner_linear2}, "aligner linear2")));

    const size_t cells = size_t(rows * hidden), attention_cells = size_t(heads * rows * rows);
    const size_t inner_width = size_t(std::max(c.intermediate_size, feature_width));
    MWB_TRY(assign(patches, up.buffer<bf16>(size_t(rows * patch_values), "vision workspace (patches)")));
    MWB_TRY(assign(x, up.buffer<float>(cells, "vision workspace (residual)")));
    MWB_TRY(assign(normed, up.buffer<bf16>(cells, "vision workspace (normed rows)")));
    MWB_TRY(assign(qkv, up.buffer<bf16>(3 * cells, "vision workspace (q|k|v)")));
    MWB_TRY(assign(scores, up.buffer<float>(attention_cells, "vision workspace (attention scores)")));
    MWB_TRY(assign(probabilities, up.buffer<bf16>(attention_cells, "vision workspace (attention probabilities)")));
    MWB_TRY(assign(attended, up.buffer<bf16>(cells, "vision workspace (attention output)")));
    MWB_TRY(assign(delta, up.buffer<bf16>(cells, "vision workspace (layer output)")));
    MWB_TRY(assign(inner, up.buffer<bf16>(size_t(rows) * inner_width, "vision workspace (inner rows)")));
    MWB_TRY(assign(features, up.buffer<float>(size_t(rows * feature_width), "vision workspace (image features)")));
    MWB_TRY(assign(cublas_workspace, up.buffer<uint8_t>(cuda::kCublasWorkspaceBytes, "vision cuBLAS workspace")));
    return {};
}

// y = x·Wᵀ + b, bf16 rows.
Status CudaVisionEncoder::Device::dense(const DeviceDense& layer, const bf16* input, int64_t rows, bf16* y) {
    MWB_TRY(blas->linear(input, layer.in, rows, layer.weight, layer.out, layer.in, y, false, layer.out));
    cuda::add_bias(y, layer.out, layer.bias, rows, layer.out, stream);
    return {};
}

// Bidirectional multi-head attention over qkv [rows, q | k | v]: every head's scores q·kᵀ / sqrt(dim) in fp32 in
// one batched GEMM, the unmasked softmax, then probabilities·v into attended [rows, heads·dim].
Status CudaVisionEncoder::Device::attention(int64_t rows, int64_t heads, int64_t dim) {
    const int64_t hidden = heads * dim, width = 3 * hidden;
    // Column-major with ldc = rows, head h's product Kᵀ·Q is [key][query] by columns: row-major [query][key].
    cuda::Blas::Batched product;
    product.transpose_a = true;
    product.m = rows, product.n = rows, product.k = dim, product.alpha = 1.0f / std::sqrt(float(dim));
    product.a = qkv + hidden, product.lda = width, product.stride_a = dim;
    product.b = qkv, product.ldb = width, product.stride_b = dim;
    product.c = scores, product.c_fp32 = true, product.ldc = rows, product.stride_c = rows * rows;
    product.batch = heads;
    MWB_TRY(blas->batched(product));
    cuda::row_softmax(scores, probabilities, heads * rows, rows, stream);

    cuda::Blas::Batched mix;
    mix.m = dim, mix.n = rows, mix.k = rows;
    mix.a = qkv + 2 * hidden, mix.lda = width, mix.stride_a = dim;
    mix.b = probabilities, mix.ldb = rows, mix.stride_b = rows * rows;
    mix.c = attended, mix.ldc = hidden, mix.stride_c = dim;
    mix.batch = heads;
    return blas->batched(mix);
}

CudaVisionEncoder::CudaVisionEncoder(const VisionConfig& vision, int64_t feature_width, int32_t image_token_id)
    : vision_(vision), feature_width_(feature_width), image_token_id_(image_token_id), device_(std::make_unique<Device>()) {}

CudaVisionEncoder::~CudaVisionEncoder() = default;

Result<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::load(std::shared_ptr<const ModelGraph> graph, int device) {
    auto weights = load_vision_weights(*graph);
    if (!weights) return weights.error();
    const VisionConfig& vision = weights->tower.config;
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        cudaGetLastError();
        return make_error("no CUDA device is available for the vision tower");
    }
    if (device < 0 || device >= devices)
        return make_error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(devices) + " found)");
    MWB_CUDA_TRY(cudaSetDevice(device));

    std::unique_ptr<CudaVisionEncoder> encoder(new CudaVisionEncoder(vision, graph->config.hidden_size, weights->image_token_id));
    Device& d = *encoder->device_;
    d.device_index = device;
    MWB_CUDA_TRY(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
    // The workspace is allocated before the cuBLAS handle, so a GPU that is too full fails here, with the bytes.
    MWB_TRY(d.upload(*weights, encoder->feature_width_));
    d.blas = std::make_unique<cuda::Blas>();
    MWB_TRY(d.blas->initialise(d.stream));
    MWB_TRY(d.blas->set_workspace(d.cublas_workspace, cuda::kCublasWorkspaceBytes));
    return encoder;
}

Result<std::vector<float>> CudaVisionEncoder::encode(std::span<const float> pixel_values) {
    const VisionConfig& c = vision_;
    const int64_t side = c.image_size, patch = c.patch_size, grid = side / patch, rows = grid * grid;
    const int64_t channels = c.num_channels, hidden = c.hidden_size, patch_values = channels * patch * patch;
    const size_t expected = size_t(channels * side * side);
    if (pixel_values.size() != expected)
        return make_error("the vision tower takes " + std::to_string(channels) + "×" + std::to_string(side) + "×" + std::to_string(side) +
                          " pixel values (" + std::to_string(expected) + "), got " + std::to_string(pixel_values.size()) +
                          "; preprocess the image with this model's preprocessor_config.json");
    Device& d = *device_;
    MWB_CUDA_TRY(cudaSetDevice(d.device_index));

    // Each patch flattened as the convolution's weight is (channel, then row, then column), as siglip_forward does.
    std::vector<uint16_t> patches(size_t(rows * patch_values));
    for (int64_t gy = 0; gy < grid; ++gy)
        for (int64_t gx = 0; gx < grid; ++gx)
            for (int64_t ch = 0; ch < channels; ++ch)
                for (int64_t py = 0; py < patch; ++py) {
                    const float* source = pixel_values.data() + (ch * side + gy * patch + py) * side + gx * patch;
                    uint16_t* target = patches.data() + (gy * grid + gx) * patch_values + (ch * patch + py) * patch;
                    std::transform(source, source + patch, target, float_to_bf16);
                }
    // From pageable memory: the call returns once the data is staged, so `patches` may go out of scope after it.
    MWB_CUDA_TRY(cudaMemcpyAsync(d.patches, patches.data(), patches.size() * sizeof(uint16_t), cudaMemcpyHostToDevice, d.stream));

    MWB_TRY(d.blas->linear(d.patches, patch_values, rows, d.patch_embedding.weight, hidden, patch_values, d.x, true, hidden));
    cuda::add_rows(d.x, d.patch_embedding.bias, 0, rows, hidden, d.stream);
    cuda::add_rows(d.x, d.position_embedding, hidden, rows, hidden, d.stream);

    const float eps = float(c.layer_norm_eps);
    const cuda::Gelu activation = c.activation == VisionActivation::GeluTanh ? cuda::Gelu::Tanh : cuda::Gelu::Erf;
    const bf16* pending = nullptr;  // the previous MLP's output, added to x by the next norm
    for (const DeviceSiglipLayer& layer : d.layers) {
        cuda::add_layer_norm(d.x, pending, layer.norm1.weight, layer.norm1.bias, rows, hidden, eps, d.normed, d.stream);
        MWB_TRY(d.dense(layer.qkv, d.normed, rows, d.qkv));
        MWB_TRY(d.attention(rows, c.num_heads, c.head_dim()));
        MWB_TRY(d.dense(layer.out, d.attended, rows, d.delta));
        cuda::add_layer_norm(d.x, d.delta, layer.norm2.weight, layer.norm2.bias, rows, hidden, eps, d.normed, d.stream);
        MWB_TRY(d.dense(layer.fc1, d.normed, rows, d.inner));
        cuda::gelu(d.inner, d.inner, rows * layer.fc1.out, activation, d.stream);
        MWB_TRY(d.dense(layer.fc2, d.inner, rows, d.delta));
        pending = d.delta;
    }
    cuda::add_layer_norm(d.x, pending, d.post_layernorm.weight, d.post_layernorm.bias, rows, hidden, eps, d.normed, d.stream);

    // The aligner: linear → exact GELU → linear, the last one straight to fp32.
    const int64_t width = feature_width_;
    MWB_TRY(d.dense(d.aligner_linear1, d.normed, rows, d.inner));
    cuda::gelu(d.inner, d.inner, rows * width, cuda::Gelu::Erf, d.stream);
    MWB_TRY(d.blas->linear(d.inner, width, rows, d.aligner_linear2.weight, width, width, d.features, true, width));
    cuda::add_rows(d.features, d.aligner_linear2.bias, 0, rows, width, d.stream);
    MWB_CUDA_TRY(cudaGetLastError());

    std::vector<float> features(size_t(rows * width));
    MWB_CUDA_TRY(cudaMemcpyAsync(features.data(), d.features, features.size() * sizeof(float), cudaMemcpyDeviceToHost, d.stream));
    MWB_CUDA_TRY(cudaStreamSynchronize(d.stream));
    return features;
}

}  // namespace mwb
