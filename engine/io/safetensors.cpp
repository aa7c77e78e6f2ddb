#include "engine/io/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/core/text_file.h"

namespace mwb {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the limit the reference implementation enforces

}  // namespace

std::string shape_text(const std::vector<int64_t>& shape) {
    constexpr size_t kShown = 8;  // a hostile header may claim thousands of dimensions: keep messages readable
    std::string text = "[";
    for (size_t i = 0; i < shape.size() && i < kShown; ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() > kShown) text += ", … (" + std::to_string(shape.size()) + " dimensions)";
    return text + "]";
}

int64_t TensorView::numel() const {
    int64_t count = 1;
    for (int64_t dim : shape) count *= dim;
    return count;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    const std::string name = fs::path(path).filename().string();
    auto mapped = MappedFile::open(path);
    if (!mapped) return mapped.error();
    SafetensorsFile result;
    result.file_ = mapped.value();
    const uint8_t* bytes = result.file_->data();
    const size_t file_size = result.file_->size();

    if (file_size < 8) return make_error(name + ": file is truncated (" + std::to_string(file_size) + " bytes, no header)");
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[i];
    if (header_length > kMaxHeaderBytes || header_length > file_size - 8)
        return make_error(name + ": header length " + std::to_string(header_length) + " is beyond the file size " +
                          std::to_string(file_size));
    const size_t data_start = 8 + header_length;
    const size_t data_size = file_size - data_start;

    // As the reference implementation: the header is a JSON object from its first byte (no byte-order mark, no
    // padding before it), and names each tensor once.
    if (header_length == 0 || bytes[8] != '{')
        return make_error(name + ": the header does not start with '{' (a byte-order mark, or not a safetensors file)");
    nlohmann::json header;
    std::string duplicate;
    std::set<std::string> names;
    const nlohmann::json::parser_callback_t note_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (event == nlohmann::json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second && duplicate.empty())
            duplicate = parsed.get<std::string>();
        return true;
    };
    try {
        header = nlohmann::json::parse(bytes + 8, bytes + data_start, note_keys);
    } catch (const nlohmann::json::exception& e) {
        return make_error(name + ": header is not valid JSON (" + e.what() + ")");
    }
    if (!header.is_object()) return make_error(name + ": header is not a JSON object");
    if (!duplicate.empty()) return make_error(name + ": the header names tensor " + duplicate + " more than once");

    std::vector<std::pair<size_t, size_t>> ranges;
    std::vector<std::string> range_names;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& tensor = it.key();
        const auto& entry = it.value();
        if (tensor == "__metadata__") {
            if (!entry.is_object()) return make_error(name + ": __metadata__ is not an object");
            for (auto m = entry.begin(); m != entry.end(); ++m)
                if (m.value().is_string()) result.metadata_[m.key()] = m.value().get<std::string>();
            continue;
        }
        const std::string where = name + ": tensor " + tensor;
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
            return make_error(where + " needs dtype, shape and data_offsets");
        if (!entry["dtype"].is_string()) return make_error(where + ": dtype is not a string");
        auto dtype = dtype_from_name(entry["dtype"].get<std::string>());
        if (!dtype) return make_error(where + " has unsupported dtype " + entry["dtype"].get<std::string>());

        TensorView view;
        view.name = tensor;
        view.dtype = *dtype;
        view.file = name;
        const auto& shape = entry["shape"];
        if (!shape.is_array()) return make_error(where + ": shape is not an array");
        uint64_t elements = 1;
        for (const auto& dim : shape) {
            if (!dim.is_number_integer() || dim.get<int64_t>() < 0) return make_error(where + ": shape has an invalid dimension");
            uint64_t d = dim.get<uint64_t>();
            if (d != 0 && elements > std::numeric_limits<uint64_t>::max() / d) return make_error(where + ": shape overflows");
            elements *= d;
            view.shape.push_back(int64_t(d));
        }
        const auto& offsets = entry["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
            return make_error(where + ": data_offsets must be two non-negative integers");
        uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
        if (begin > end || end > data_size)
            return make_error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                              "] are outside the data region of " + std::to_string(data_size) + " bytes");
        const uint64_t element_size = dtype_size(*dtype);
        if (elements > std::numeric_limits<uint64_t>::max() / element_size || end - begin != elements * element_size)
            return make_error(where + ": shape " + shape_text(view.shape) + " × " + std::string(dtype_name(*dtype)) +
                              " needs " + std::to_string(elements * element_size) + " bytes but data_offsets give " +
                              std::to_string(end - begin));
        view.data = bytes + data_start + begin;
        view.bytes = end - begin;
        ranges.emplace_back(begin, end);
        range_names.push_back(tensor);
        result.tensors_.emplace(tensor, std::move(view));
    }

    // The tensors tile the data region exactly, as the reference implementation requires: each begins where the
    // one before ends, the last ends at the end of the file. A header length off by a byte, a gap or trailing
    // bytes would otherwise shift or hide data without a word.
    std::vector<size_t> order(ranges.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
    size_t covered = 0;
    for (size_t i = 0; i < order.size(); ++i) {
        const auto& [begin, end] = ranges[order[i]];
        if (begin < covered)
            return make_error(name + ": tensors " + range_names[order[i - 1]] + " and " + range_names[order[i]] +
                              " overlap in the data region");
        if (begin > covered)
            return make_error(name + ": bytes " + std::to_string(covered) + " to " + std::to_string(begin) + " of the data region belong to no tensor (before " +
                              range_names[order[i]] + "): the header does not describe this file");
        covered = end;
    }
    if (covered != data_size)
        return make_error(name + ": the tensors end at byte " + std::to_string(covered) + " of a data region of " + std::to_string(data_size) +
                          " bytes: the header length or the offsets are wrong, or bytes were appended");
    return result;
}

Status TensorStore::add(SafetensorsFile file, const std::string& file_name) {
    for (const auto& [name, view] : file.tensors()) {
        if (tensors_.count(name))
            return make_error("tensor " + name + " appears in both " + tensors_[name].file + " and " + file_name);
        tensors_.emplace(name, view);
    }
    shards_.push_back(std::move(file));
    files_.push_back(file_name);
    return {};
}

Result<TensorStore> TensorStore::open_file(const std::string& path) {
    TensorStore store;
    store.directory_ = fs::path(path).parent_path().string();
    auto file = SafetensorsFile::open(path);
    if (!file) return file.error();
    MWB_TRY(store.add(std::move(file.value()), fs::path(path).filename().string()));
    return store;
}

Result<TensorStore> TensorStore::open_directory(const std::string& directory) {
    TensorStore store;
    store.directory_ = directory;
    const fs::path dir(directory);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return make_error(directory + " is not a directory");

    const fs::path index_path = dir / "model.safetensors.index.json";
    if (fs::exists(index_path, ec)) {
        auto text = read_text_file(index_path.string());
        if (!text) return text.error();
        nlohmann::json index;
        try {
            index = nlohmann::json::parse(*text);
        } catch (const nlohmann::json::exception& e) {
            return make_error("model.safetensors.index.json is not valid JSON (" + std::string(e.what()) + ")");
        }
        if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
            return make_error("model.safetensors.index.json has no weight_map object");
        std::map<std::string, std::vector<std::string>> tensors_by_file;
        for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
            if (!it.value().is_string()) return make_error("model.safetensors.index.json: weight_map entry " + it.key() + " is not a file name");
            const std::string file = it.value().get<std::string>();
            if (file.find('/') != std::string::npos || file == ".." )
                return make_error("model.safetensors.index.json: shard name " + file + " must be a plain file name");
            tensors_by_file[file].push_back(it.key());
        }
        for (const auto& [file, names] : tensors_by_file) {
            if (!fs::exists(dir / file, ec))
                return make_error("shard " + file + " listed in model.safetensors.index.json is missing");
            auto shard = SafetensorsFile::open((dir / file).string());
            if (!shard) return shard.error();
            for (const auto& name : names)
                if (!shard->tensors().count(name))
                    return make_error("tensor " + name + " missing in " + file + " (model.safetensors.index.json lists it there)");
            MWB_TRY(store.add(std::move(shard.value()), file));
        }
        return store;
    }

    std::vector<fs::path> files;
    if (fs::exists(dir / "model.safetensors", ec)) {
        files.push_back(dir / "model.safetensors");
    } else {
        for (const auto& entry : fs::directory_iterator(dir, ec))
            if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
        std::sort(files.begin(), files.end());
    }
    if (files.empty()) return make_error("no *.safetensors weights in " + directory);
    for (const auto& path : files) {
        auto file = SafetensorsFile::open(path.string());
        if (!file) return file.error();
        MWB_TRY(store.add(std::move(file.value()), path.filename().string()));
    }
    return store;
}

Result<TensorStore> TensorStore::from_memory(std::vector<TensorToWrite> tensors) {
    TensorStore store;
    store.directory_ = "memory";
    store.files_.push_back("memory");
    for (auto& t : tensors) {
        TensorView view;
        view.name = t.name;
        view.dtype = t.dtype;
        view.shape = t.shape;
        view.file = "memory";
        view.bytes = t.bytes.size();
        if (size_t(view.numel()) * dtype_size(view.dtype) != view.bytes)
            return make_error("in-memory tensor " + t.name + " has " + std::to_string(view.bytes) + " bytes for shape " + shape_text(t.shape));
        auto owned = std::make_shared<std::vector<uint8_t>>(std::move(t.bytes));
        view.data = owned->data();
        store.owned_.push_back(std::move(owned));
        if (!store.tensors_.emplace(view.name, view).second) return make_error("in-memory tensor " + t.name + " given twice");
    }
    return store;
}

void TensorStore::prefix_names(const std::string& prefix) {
    std::map<std::string, TensorView> renamed;
    for (auto& [name, view] : tensors_) renamed.emplace(prefix + name, std::move(view));
    tensors_ = std::move(renamed);
}

void TensorStore::rename_prefix(const std::string& from, const std::string& to) {
    std::map<std::string, TensorView> renamed;
    for (auto& [name, view] : tensors_) {
        if (!name.starts_with(from)) continue;
        view.name = to + name.substr(from.size());
        renamed.insert_or_assign(view.name, std::move(view));
    }
    std::erase_if(tensors_, [&](const auto& entry) { return entry.first.starts_with(from); });
    for (auto& [name, view] : renamed) tensors_.insert_or_assign(name, std::move(view));
}

Result<TensorView> TensorStore::get(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) {
        std::string where = files_.size() == 1 ? files_[0] : std::to_string(files_.size()) + " shards of " + directory_;
        return make_error("tensor " + name + " missing in " + where);
    }
    return it->second;
}

Result<std::vector<float>> TensorStore::read_float(const std::string& name, const std::vector<int64_t>& shape) const {
    auto view = get(name);
    if (!view) return view.error();
    if (!dtype_is_float(view->dtype))
        return make_error("tensor " + name + " in " + view->file + " has dtype " + std::string(dtype_name(view->dtype)) + ", expected a float type");
    if (!shape.empty() && view->shape != shape)
        return make_error("tensor " + name + " in " + view->file + " has shape " + shape_text(view->shape) + ", expected " + shape_text(shape));
    std::vector<float> values(size_t(view->numel()));
    convert_to_float(view->dtype, view->data, values.data(), values.size());
    return values;
}

Result<std::vector<int64_t>> TensorStore::read_int64(const std::string& name) const {
    auto view = get(name);
    if (!view) return view.error();
    if (view->dtype != DType::I64)
        return make_error("tensor " + name + " in " + view->file + " has dtype " + std::string(dtype_name(view->dtype)) + ", expected I64");
    std::vector<int64_t> values(size_t(view->numel()));
    std::memcpy(values.data(), view->data, view->bytes);
    return values;
}

TensorToWrite tensor_f32(std::string name, std::vector<int64_t> shape, std::span<const float> values) {
    TensorToWrite t{std::move(name), DType::F32, std::move(shape), {}};
    t.bytes.resize(values.size_bytes());
    std::memcpy(t.bytes.data(), values.data(), values.size_bytes());
    return t;
}

TensorToWrite tensor_i64(std::string name, std::vector<int64_t> shape, std::span<const int64_t> values) {
    TensorToWrite t{std::move(name), DType::I64, std::move(shape), {}};
    t.bytes.resize(values.size_bytes());
    std::memcpy(t.bytes.data(), values.data(), values.size_bytes());
    return t;
}

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<const TensorToWrite*> ordered;
    for (const auto& t : tensors) ordered.push_back(&t);
    std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->name < b->name; });
    uint64_t offset = 0;
    for (const auto* t : ordered) {
        header[t->name] = {{"dtype", std::string(dtype_name(t->dtype))}, {"shape", t->shape},
                           {"data_offsets", {offset, offset + t->bytes.size()}}};
        offset += t->bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');

    const std::string temporary = path + ".partial";
    std::FILE* out = std::fopen(temporary.c_str(), "wb");
    if (!out) return make_error("cannot write " + path + ": " + std::strerror(errno));
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    bool ok = std::fwrite(length, 1, 8, out) == 8 && std::fwrite(text.data(), 1, text.size(), out) == text.size();
    for (const auto* t : ordered)
        ok = ok && std::fwrite(t->bytes.data(), 1, t->bytes.size(), out) == t->bytes.size();
    ok = (std::fclose(out) == 0) && ok;
    if (!ok) {
        std::remove(temporary.c_str());
        return make_error("writing " + path + " failed (disk full?)");
    }
    std::error_code ec;
    fs::rename(temporary, path, ec);
    if (ec) return make_error("cannot move " + temporary + " to " + path + ": " + ec.message());
    return {};
}

}  // namespace mwb
