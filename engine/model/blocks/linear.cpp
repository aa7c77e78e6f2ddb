#include "engine/model/blocks/linear.h"

#include <cstdint>

namespace mwb {

size_t LinearWeight::stored_bytes() const {
    size_t bytes = weight.bytes;
    if (bias) bytes += bias->bytes;
    if (block_scale) bytes += block_scale->bytes;
    return bytes;
}

Result<TensorView> WeightLoader::float_tensor(const std::string& name, const std::vector<int64_t>& shape) const {
    auto view = store_.get(name);
    if (!view) return view.error();
    if (!dtype_is_float(view->dtype))
        return make_error("tensor " + name + " in " + view->file + " has dtype " + std::string(dtype_name(view->dtype)) +
                          "; a float type is needed");
    if (view->shape != shape)
        return make_error("config.json does not describe these weights: it implies " + shape_text(shape) + " for tensor " + name +
                          ", which is " + shape_text(view->shape) + " in " + view->file +
                          " (check hidden_size, intermediate_size, the head counts and sizes, and vocab_size in config.json)");
    return view;
}

Result<LinearWeight> WeightLoader::linear(const std::string& prefix, int64_t out_features, int64_t in_features,
                                          bool with_bias) const {
    LinearWeight linear;
    linear.out_features = out_features;
    linear.in_features = in_features;
    auto weight = float_tensor(prefix + ".weight", {out_features, in_features});
    if (!weight) return weight.error();
    linear.weight = *weight;
    if (with_bias) {
        auto bias = float_tensor(prefix + ".bias", {out_features});
        if (!bias) return bias.error();
        linear.bias = *bias;
    }
    if (linear.weight.dtype == DType::F8_E4M3) {
        if (!config_.fp8)
            return make_error("tensor " + prefix + ".weight in " + linear.weight.file +
                              " is F8_E4M3 but config.json has no fp8 quantization_config");
        linear.block_rows = config_.fp8->block_rows;
        linear.block_cols = config_.fp8->block_cols;
        const int64_t rows = (out_features + linear.block_rows - 1) / linear.block_rows;
        const int64_t cols = (in_features + linear.block_cols - 1) / linear.block_cols;
        auto scale = store_.get(prefix + ".weight_scale_inv");
        if (!scale) return scale.error();
        if (scale->dtype != DType::F32 || scale->shape != std::vector<int64_t>{rows, cols})
            return make_error("tensor " + prefix + ".weight_scale_inv in " + scale->file + " must be F32 " +
                              shape_text({rows, cols}) + ", found " + std::string(dtype_name(scale->dtype)) + " " +
                              shape_text(scale->shape));
        linear.block_scale = *scale;
    }
    return linear;
}

Result<VectorWeight> WeightLoader::vector(const std::string& name, int64_t size) const {
    auto view = float_tensor(name, {size});
    if (!view) return view.error();
    if (view->dtype == DType::F8_E4M3) return make_error("tensor " + name + " in " + view->file + " cannot be F8_E4M3");
    return VectorWeight{*view, size};
}

Result<LinearWeight> WeightLoader::table(const std::string& name, int64_t rows, int64_t cols) const {
    auto view = float_tensor(name, {rows, cols});
    if (!view) return view.error();
    if (view->dtype == DType::F8_E4M3) return make_error("tensor " + name + " in " + view->file + " cannot be F8_E4M3");
    LinearWeight linear;
    linear.weight = *view;
    linear.out_features = rows;
    linear.in_features = cols;
    return linear;
}

}  // namespace mwb
