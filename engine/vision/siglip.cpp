#include "engine/vision/siglip.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb {

namespace {

Result<LayerNormWeights> load_layer_norm(const WeightLoader& loader, const std::string& prefix, int64_t width) {
    auto weight = loader.vector(prefix + ".weight", width);
    if (!weight) return weight.error();
    auto bias = loader.vector(prefix + ".bias", width);
    if (!bias) return bias.error();
    return LayerNormWeights{cpu::decode_vector(weight->weight), cpu::decode_vector(bias->weight)};
}

Result<SiglipLayer> load_layer(const WeightLoader& loader, const VisionConfig& config, const std::string& prefix) {
    const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
    SiglipLayer layer;
    auto norm1 = load_layer_norm(loader, prefix + ".layer_norm1", hidden);
    if (!norm1) return norm1.error();
    layer.layer_norm1 = std::move(*norm1);
    auto norm2 = load_layer_norm(loader, prefix + ".layer_norm2", hidden);
    if (!norm2) return norm2.error();
    layer.layer_norm2 = std::move(*norm2);
    struct Part {
        DenseWeights* target;
        const char* name;
        int64_t out, in;
    };
    for (const Part& part : {Part{&layer.q_proj, ".self_attn.q_proj", hidden, hidden}, Part{&layer.k_proj, ".self_attn.k_proj", hidden, hidden},
                             Part{&layer.v_proj, ".self_attn.v_proj", hidden, hidden},
                             Part{&layer.out_proj, ".self_attn.out_proj", hidden, hidden}, Part{&layer.fc1, ".mlp.fc1", inner, hidden},
                             Part{&layer.fc2, ".mlp.fc2", hidden, inner}}) {
        auto weights = load_dense(loader, prefix + part.name, part.out, part.in);
        if (!weights) return weights.error();
        *part.target = std::move(*weights);
    }
    return layer;
}

// The Conv2d's weight [hidden, channels, patch, patch] is, row by row, a linear map of one flattened patch.
Result<DenseWeights> load_patch_embedding(const TensorStore& store, const WeightLoader& loader, const VisionConfig& config,
                                          const std::string& prefix) {
    const std::vector<int64_t> shape{config.hidden_size, config.num_channels, config.patch_size, config.patch_size};
    auto view = store.get(prefix + ".weight");
    if (!view) return view.error();
    if (!dtype_is_float(view->dtype) || view->dtype == DType::F8_E4M3 || view->shape != shape)
        return make_error("tensor " + prefix + ".weight in " + view->file + " is " + std::string(dtype_name(view->dtype)) + " " +
                          shape_text(view->shape) + "; vision_config in config.json implies a float tensor " + shape_text(shape) +
                          " (check hidden_size, num_channels and patch_size)");
    DenseWeights patch;
    patch.linear.weight = *view;
    patch.linear.out_features = config.hidden_size;
    patch.linear.in_features = config.num_channels * config.patch_size * config.patch_size;
    auto bias = loader.vector(prefix + ".bias", config.hidden_size);
    if (!bias) return bias.error();
    patch.bias = cpu::decode_vector(bias->weight);
    return patch;
}

// Bidirectional multi-head attention over all rows: softmax(q·kᵀ / sqrt(head_dim)) · v, head by head.
void attention(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t rows, int64_t heads, int64_t head_dim,
               float* out) {
    const int64_t width = heads * head_dim;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    pool.parallel_for(heads * rows, [&](int64_t first, int64_t last) {
        std::vector<float> scores(static_cast<size_t>(rows));
        for (int64_t item = first; item < last; ++item) {
            const int64_t head = item / rows, row = item % rows;
            const float* query = q + row * width + head * head_dim;
            for (int64_t j = 0; j < rows; ++j) scores[size_t(j)] = cpu::dot(query, k + j * width + head * head_dim, head_dim) * scale;
            cpu::softmax(scores.data(), rows);
            float* target = out + row * width + head * head_dim;
            std::fill(target, target + head_dim, 0.0f);
            for (int64_t j = 0; j < rows; ++j) {
                const float* value = v + j * width + head * head_dim;
                for (int64_t d = 0; d < head_dim; ++d) target[d] += scores[size_t(j)] * value[d];
            }
        }
    });
}

}  // namespace

Result<DenseWeights> load_dense(const WeightLoader& loader, const std::string& prefix, int64_t out_features, int64_t in_features) {
    auto linear = loader.linear(prefix, out_features, in_features, true);
    if (!linear) return linear.error();
    return DenseWeights{*linear, cpu::decode_vector(*linear->bias)};
}

void dense(ThreadPool& pool, const DenseWeights& weights, const float* x, int64_t rows, float* y) {
    cpu::linear(pool, weights.linear, weights.bias.data(), x, rows, y);
}

Result<SiglipWeights> load_siglip(const TensorStore& store, const ModelConfig& model, const VisionConfig& config,
                                  const std::string& prefix) {
    WeightLoader loader(store, model);
    SiglipWeights tower;
    tower.config = config;
    auto patch = load_patch_embedding(store, loader, config, prefix + "embeddings.patch_embedding");
    if (!patch) return patch.error();
    tower.patch_embedding = std::move(*patch);
    auto positions = loader.table(prefix + "embeddings.position_embedding.weight", config.patches_per_image(), config.hidden_size);
    if (!positions) return positions.error();
    tower.position_embedding = cpu::decode_vector(positions->weight);
    for (int64_t l = 0; l < config.num_layers; ++l) {
        auto layer = load_layer(loader, config, prefix + "encoder.layers." + std::to_string(l));
        if (!layer) return layer.error();
        tower.layers.push_back(std::move(*layer));
    }
    auto post = load_layer_norm(loader, prefix + "post_layernorm", config.hidden_size);
    if (!post) return post.error();
    tower.post_layernorm = std::move(*post);
    return tower;
}

std::vector<float> siglip_forward(ThreadPool& pool, const SiglipWeights& weights, const float* pixels) {
    const VisionConfig& c = weights.config;
    const int64_t side = c.image_size, patch = c.patch_size, grid = side / patch, rows = grid * grid;
    const int64_t hidden = c.hidden_size, inner = c.intermediate_size, patch_values = c.num_channels * patch * patch;
    const float eps = float(c.layer_norm_eps);

    // Each patch flattened as the convolution's weight is: channel, then row, then column.
    std::vector<float> patches(size_t(rows * patch_values));
    for (int64_t gy = 0; gy < grid; ++gy)
        for (int64_t gx = 0; gx < grid; ++gx) {
            float* target = patches.data() + (gy * grid + gx) * patch_values;
            for (int64_t ch = 0; ch < c.num_channels; ++ch)
                for (int64_t py = 0; py < patch; ++py)
                    std::copy_n(pixels + (ch * side + gy * patch + py) * side + gx * patch, patch, target + (ch * patch + py) * patch);
        }
    std::vector<float> x(size_t(rows * hidden));
    dense(pool, weights.patch_embedding, patches.data(), rows, x.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += weights.position_embedding[i];

    std::vector<float> h(x.size()), q(x.size()), k(x.size()), v(x.size()), mixed(x.size()), delta(x.size());
    std::vector<float> up(size_t(rows * inner));
    for (const SiglipLayer& layer : weights.layers) {
        cpu::layer_norm(x.data(), layer.layer_norm1.weight.data(), layer.layer_norm1.bias.data(), rows, hidden, eps, h.data());
        dense(pool, layer.q_proj, h.data(), rows, q.data());
        dense(pool, layer.k_proj, h.data(), rows, k.data());
        dense(pool, layer.v_proj, h.data(), rows, v.data());
        attention(pool, q.data(), k.data(), v.data(), rows, c.num_heads, c.head_dim(), mixed.data());
        dense(pool, layer.out_proj, mixed.data(), rows, delta.data());
        for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];

        cpu::layer_norm(x.data(), layer.layer_norm2.weight.data(), layer.layer_norm2.bias.data(), rows, hidden, eps, h.data());
        dense(pool, layer.fc1, h.data(), rows, up.data());
        if (c.activation == VisionActivation::GeluTanh) cpu::gelu_tanh(up.data(), rows * inner);
        else cpu::gelu_erf(up.data(), rows * inner);
        dense(pool, layer.fc2, up.data(), rows, delta.data());
        for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
    }
    cpu::layer_norm(x.data(), weights.post_layernorm.weight.data(), weights.post_layernorm.bias.data(), rows, hidden, eps, x.data());
    return x;
}

}  // namespace mwb
