#include "engine/train/merge.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/io/safetensors.h"
#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb::train {

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> encode(const std::vector<float>& values, DType dtype) {
    std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
        if (dtype == DType::F32) {
            std::memcpy(bytes.data() + 4 * i, &values[i], 4);
        } else {
            const uint16_t half = dtype == DType::BF16 ? float_to_bf16(values[i]) : float_to_f16(values[i]);
            std::memcpy(bytes.data() + 2 * i, &half, 2);
        }
    }
    return bytes;
}

std::string shard_name(size_t index, size_t count) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
    return name;
}

}  // namespace

Status merge_adapter(const std::string& model_directory, const ModelGraph& graph, const LoraAdapter& adapter,
                     const std::string& output_directory, const MergeOptions& options) {
    if (fs::exists(output_directory) && !fs::is_empty(output_directory))
        return make_error(output_directory + " is not empty: merge into a new folder");
    if (options.dtype && *options.dtype != DType::F32 && *options.dtype != DType::BF16 && *options.dtype != DType::F16)
        return make_error("merged weights can be float32, bfloat16 or float16");
    // The merged weight of each adapted layer, by tensor name.
    std::map<std::string, std::pair<const LinearWeight*, const LoraModule*>> adapted;
    const auto modules = linear_modules(graph);
    for (const LoraModule& m : adapter.modules()) {
        auto weight = modules.find(m.name);
        if (weight == modules.end()) return make_error("the adapter has weights for " + m.name + ", which this model does not have");
        if (weight->second->block_scale)
            return make_error(m.name + " is stored in FP8 with block scales; merging into it would lose the adapter: merge into a bf16 copy "
                                       "of the model, or apply the adapter unmerged (--adapter)");
        adapted[weight->second->weight.name] = {weight->second, &m};
    }

    std::error_code error;
    fs::create_directories(output_directory, error);
    if (error) return make_error("cannot create " + output_directory + ": " + error.message());
    // Tensors in the base checkpoint's order, the adapted ones merged, cut into shards.
    std::vector<std::vector<TensorToWrite>> shards(1);
    int64_t shard_bytes = 0, total_bytes = 0;
    const float scale = float(adapter.config().scale());
    const int64_t rank = adapter.config().rank;
    for (const auto& [name, view] : graph.store->tensors()) {
        TensorToWrite tensor{name, view.dtype, view.shape, {}};
        if (auto found = adapted.find(name); found != adapted.end()) {
            const LinearWeight& weight = *found->second.first;
            const LoraModule& m = *found->second.second;
            std::vector<float> merged(size_t(weight.out_features * weight.in_features));
            cpu::decode_rows(weight, 0, weight.out_features, merged.data());
            for (int64_t o = 0; o < weight.out_features; ++o)
                for (int64_t k = 0; k < rank; ++k) {
                    const float b = scale * m.b[size_t(o * rank + k)];
                    if (b == 0.0f) continue;
                    float* row = merged.data() + o * weight.in_features;
                    for (int64_t i = 0; i < weight.in_features; ++i) row[i] += b * m.a[size_t(k * weight.in_features + i)];
                }
            tensor.dtype = options.dtype.value_or(view.dtype);
            tensor.bytes = encode(merged, tensor.dtype);
        } else {
            tensor.bytes.assign(view.data, view.data + view.bytes);
        }
        const int64_t bytes = int64_t(tensor.bytes.size());
        if (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shard_bytes += bytes;
        total_bytes += bytes;
        shards.back().push_back(std::move(tensor));
    }
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
        const std::string file = shards.size() == 1 ? "model.safetensors" : shard_name(s, shards.size());
        for (const TensorToWrite& t : shards[s]) weight_map[t.name] = file;
        MWB_TRY(write_safetensors(output_directory + "/" + file, shards[s], {{"format", "pt"}}));
        shards[s].clear();
    }
    if (shards.size() > 1) {
        std::ofstream index(output_directory + "/model.safetensors.index.json", std::ios::trunc);
        index << nlohmann::json{{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}}.dump(2) << "\n";
        if (!index) return make_error("cannot write the shard index in " + output_directory);
    }
    // Everything else of the model folder (config, generation config, tokenizer files) comes along unchanged.
    for (const fs::directory_entry& entry : fs::directory_iterator(model_directory, error)) {
        const std::string file = entry.path().filename().string();
        if (!entry.is_regular_file() || entry.path().extension() == ".safetensors" || file == "model.safetensors.index.json") continue;
        fs::copy_file(entry.path(), fs::path(output_directory) / file, fs::copy_options::overwrite_existing, error);
        if (error) return make_error("cannot copy " + file + " to " + output_directory + ": " + error.message());
    }
    if (error) return make_error("cannot read " + model_directory + ": " + error.message());
    // The merged weights' dtype is what config.json should announce.
    if (options.dtype) {
        const std::string config_path = output_directory + "/config.json";
        std::ifstream in(config_path);
        nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
        if (!config.is_discarded() && config.is_object()) {
            config["torch_dtype"] = *options.dtype == DType::F32 ? "float32" : *options.dtype == DType::BF16 ? "bfloat16" : "float16";
            in.close();
            std::ofstream out(config_path, std::ios::trunc);
            out << config.dump(2) << "\n";
        }
    }
    return Status::success();
}

}  // namespace mwb::train
