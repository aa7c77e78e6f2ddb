// safetensors checkpoints: validated, memory-mapped reading (single files and sharded directories) and writing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/io/dtype.h"
#include "engine/io/mapped_file.h"

namespace mwb {

struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;  // inside the mapped file, valid while the owning file lives
    size_t bytes = 0;
    std::string file;                // file name (no directory), for error messages

    int64_t numel() const;
};

class SafetensorsFile {
public:
    // Maps the file and validates the whole header before any tensor is used.
    static Result<SafetensorsFile> open(const std::string& path);

    const std::map<std::string, TensorView>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    std::shared_ptr<MappedFile> file_;
    std::map<std::string, TensorView> tensors_;
    std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: `model.safetensors.index.json` when present, else
// `model.safetensors`, else every `*.safetensors` file.
class TensorStore {
public:
    static Result<TensorStore> open_directory(const std::string& directory);
    static Result<TensorStore> open_file(const std::string& path);
    // Tensors that live in memory (random weights for benchmarks); the store owns their bytes.
    static Result<TensorStore> from_memory(std::vector<struct TensorToWrite> tensors);

    bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
    Result<TensorView> get(const std::string& name) const;
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }
    const std::vector<std::string>& files() const { return files_; }
    // Reads a float tensor into float32 (any float dtype), checking its shape.
    Result<std::vector<float>> read_float(const std::string& name, const std::vector<int64_t>& shape) const;
    Result<std::vector<int64_t>> read_int64(const std::string& name) const;
    // Puts `prefix` before every tensor's name: a checkpoint saved from a base model (Qwen2Model, LlamaModel,
    // as embedding models are) names its tensors without the "model." of the causal-LM layout.
    void prefix_names(const std::string& prefix);
    // Names that start with `from` start with `to` instead; the others stay. A vision-language checkpoint keeps its
    // language model under "model.language_model.", where the text architectures read "model.".
    void rename_prefix(const std::string& from, const std::string& to);

private:
    Status add(SafetensorsFile file, const std::string& file_name);

    std::vector<SafetensorsFile> shards_;
    std::vector<std::shared_ptr<std::vector<uint8_t>>> owned_;
    std::map<std::string, TensorView> tensors_;
    std::vector<std::string> files_;
    std::string directory_;
};

// "[2, 3]": a shape as error messages print it.
std::string shape_text(const std::vector<int64_t>& shape);

struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

TensorToWrite tensor_f32(std::string name, std::vector<int64_t> shape, std::span<const float> values);
TensorToWrite tensor_i64(std::string name, std::vector<int64_t> shape, std::span<const int64_t> values);

// Writes atomically (temporary file + rename) so an interrupted write never leaves a broken checkpoint.
Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace mwb
