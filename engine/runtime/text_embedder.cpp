#include "engine/runtime/text_embedder.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <system_error>
#include <utility>

#include "engine/core/json_nesting.h"
#include "engine/core/text_file.h"
#include "engine/tokenizer/unicode.h"
#include "engine/tokenizer/utf8.h"

namespace mwb {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::string_view kTransformerModule = "sentence_transformers.models.Transformer";
constexpr std::string_view kPoolingModule = "sentence_transformers.models.Pooling";
constexpr std::string_view kNormalizeModule = "sentence_transformers.models.Normalize";
// The modules supported, in the only order supported.
constexpr std::string_view kPipeline[] = {kTransformerModule, kPoolingModule, kNormalizeModule};

// Texts embedded in one forward pass, each in its own KV-cache slot: at most this many, and together at most
// kBatchTokens tokens unless a single text is longer.
constexpr size_t kBatchSequences = 8;
constexpr int64_t kBatchTokens = 2048;
// The KV cache grows in steps of this many tokens, so that texts of similar lengths reuse it.
constexpr int64_t kCacheStep = 256;

bool file_exists(const fs::path& path) {
    std::error_code error;
    return fs::exists(path, error);
}

// `name` is the file's path inside the model folder, as error messages give it.
Result<json> read_json_file(const fs::path& directory, const std::string& name) {
    auto text = read_text_file((directory / name).string());
    if (!text) return text.error();
    MWB_TRY(check_json_nesting(*text, name));
    try {
        return json::parse(*text);
    } catch (const json::exception& error) {  // syntax, and numbers such as 1e400 beyond a double
        return make_error(name + ": not valid JSON (" + error.what() + ")");
    }
}

Result<json> read_json_object(const fs::path& directory, const std::string& name) {
    auto root = read_json_file(directory, name);
    if (root && !root->is_object()) return make_error(name + " is not a JSON object");
    return root;
}

// The value of `key` when present and not null.
const json* optional_key(const json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

Status read_flag(const json& object, const std::string& file, const char* key, bool& out) {
    const json* value = optional_key(object, key);
    if (!value) return {};
    if (!value->is_boolean()) return make_error(file + ": " + key + " must be true or false");
    out = value->get<bool>();
    return {};
}

Status read_positive(const json& object, const std::string& file, const char* key, std::optional<int64_t>& out) {
    const json* value = optional_key(object, key);
    if (!value) return {};
    if (!value->is_number_integer() || value->get<int64_t>() <= 0) return make_error(file + ": " + key + " must be a positive integer");
    out = value->get<int64_t>();
    return {};
}

// A module's folder inside the model folder; absolute paths and ".." would read files from elsewhere.
Result<fs::path> module_directory(const fs::path& model_directory, const std::string& path) {
    const fs::path relative = fs::path(path).lexically_normal();
    if (relative.is_absolute() || (!relative.empty() && *relative.begin() == ".."))
        return make_error("modules.json: module path '" + path + "' leaves the model folder");
    return relative.empty() ? model_directory : model_directory / relative;
}

struct ModulePaths {
    std::string transformer, pooling;
    bool normalize = false;
};

Result<ModulePaths> read_modules(const fs::path& directory) {
    if (!file_exists(directory / "modules.json"))
        return make_error(directory.string() + " has no modules.json: it is not a sentence-transformers embedding model "
                                               "(choose a folder saved by sentence-transformers, such as gte-Qwen2-1.5B-instruct)");
    auto root = read_json_file(directory, "modules.json");
    if (!root) return root.error();
    if (!root->is_array()) return make_error("modules.json is not a JSON list of modules");
    const std::string misordered = "modules.json: expected the modules Transformer, Pooling and optionally Normalize, in that order";
    ModulePaths paths;
    for (size_t i = 0; i < root->size(); ++i) {
        const json& module = (*root)[i];
        const json* type = module.is_object() ? optional_key(module, "type") : nullptr;
        if (!type || !type->is_string()) return make_error("modules.json: every module needs a string \"type\"");
        const std::string name = type->get<std::string>();
        if (std::find(std::begin(kPipeline), std::end(kPipeline), name) == std::end(kPipeline))
            return make_error("module " + name + " in modules.json is not supported (supported: Transformer, Pooling, Normalize)");
        if (i >= std::size(kPipeline) || name != kPipeline[i]) return make_error(misordered);
        if (name == kNormalizeModule) continue;  // it has no files
        const json* path = optional_key(module, "path");
        if (!path || !path->is_string()) return make_error("modules.json: module " + name + " needs a string \"path\"");
        (name == kTransformerModule ? paths.transformer : paths.pooling) = path->get<std::string>();
    }
    if (root->size() < 2) return make_error(misordered);
    paths.normalize = root->size() == 3;
    return paths;
}

Status read_pooling(const fs::path& model_directory, const std::string& module_path, SentenceEmbeddingConfig& config) {
    const std::string name = (fs::path(module_path) / "config.json").lexically_normal().string();
    auto root = read_json_object(model_directory, name);
    if (!root) return root.error();
    static const std::pair<const char*, PoolingMode> kModes[] = {
        {"pooling_mode_cls_token", PoolingMode::Cls},           {"pooling_mode_mean_tokens", PoolingMode::Mean},
        {"pooling_mode_max_tokens", PoolingMode::Max},          {"pooling_mode_mean_sqrt_len_tokens", PoolingMode::MeanSqrtLen},
        {"pooling_mode_lasttoken", PoolingMode::LastToken},     {"pooling_mode_weightedmean_tokens", PoolingMode::WeightedMean}};
    std::string chosen;
    int count = 0;
    for (const auto& [key, mode] : kModes) {
        bool set = false;
        MWB_TRY(read_flag(*root, name, key, set));
        if (!set) continue;
        config.pooling.mode = mode;
        chosen += (count++ ? ", " : "") + std::string(key);
    }
    if (count == 0) return make_error(name + ": no pooling mode is set (pooling_mode_mean_tokens, pooling_mode_lasttoken, ...)");
    if (count > 1) return make_error(name + " sets several pooling modes (" + chosen + "): their concatenation is not supported");
    MWB_TRY(read_flag(*root, name, "include_prompt", config.pooling.include_prompt));
    return read_positive(*root, name, "word_embedding_dimension", config.dimension);
}

// sentence_bert_config.json, in the Transformer module's folder.
Status read_transformer_options(const fs::path& model_directory, const std::string& module_path, SentenceEmbeddingConfig& config) {
    const std::string name = (fs::path(module_path) / "sentence_bert_config.json").lexically_normal().string();
    if (!file_exists(model_directory / name)) return {};
    auto root = read_json_object(model_directory, name);
    if (!root) return root.error();
    MWB_TRY(read_positive(*root, name, "max_seq_length", config.max_seq_length));
    return read_flag(*root, name, "do_lower_case", config.lower_case);
}

Status read_prompts(const fs::path& model_directory, SentenceEmbeddingConfig& config) {
    const std::string name = "config_sentence_transformers.json";
    if (!file_exists(model_directory / name)) return {};
    auto root = read_json_object(model_directory, name);
    if (!root) return root.error();
    if (const json* prompts = optional_key(*root, "prompts")) {
        if (!prompts->is_object()) return make_error(name + ": prompts must be an object of prompt names and texts");
        for (auto it = prompts->begin(); it != prompts->end(); ++it) {
            if (!it->is_string()) return make_error(name + ": prompt '" + it.key() + "' must be a string");
            config.prompts.emplace(it.key(), it->get<std::string>());
        }
    }
    if (const json* fallback = optional_key(*root, "default_prompt_name")) {
        if (!fallback->is_string()) return make_error(name + ": default_prompt_name must be a string or null");
        config.default_prompt_name = fallback->get<std::string>();
        if (!config.default_prompt_name.empty() && !config.prompts.count(config.default_prompt_name))
            return make_error(name + ": default_prompt_name '" + config.default_prompt_name + "' is not one of its prompts");
    }
    return {};
}

// sentence-transformers strips each text with Python's str.strip(): Unicode whitespace and the separators
// U+001C..U+001F.
std::string strip_whitespace(std::string_view text) {
    auto is_space = [](char32_t c) { return tok::unicode::is_whitespace(c) || (c >= 0x1C && c <= 0x1F); };
    const std::u32string code_points = tok::utf8::to_u32(text);
    size_t first = 0, last = code_points.size();
    while (first < last && is_space(code_points[first])) ++first;
    while (last > first && is_space(code_points[last - 1])) --last;
    return tok::utf8::from_u32(std::u32string_view(code_points).substr(first, last - first));
}

// Keeps, per KV-cache slot, the hidden state after the final norm of every token: what sentence-transformers'
// Transformer module outputs (last_hidden_state).
class FinalHiddenStates final : public ForwardObserver {
public:
    FinalHiddenStates(int64_t final_index, int64_t width, const std::vector<int64_t>& lengths)
        : final_index_(final_index), width_(width), lengths_(lengths) {
        for (int64_t length : lengths) {
            rows_.emplace_back(size_t(length * width), 0.0f);
            expected_ += length;
        }
    }

    bool wants_hidden_states() const override { return true; }
    void on_hidden_state(int64_t slot, int64_t position, int64_t index, int64_t width, const float* values) override {
        if (index != final_index_ || width != width_ || slot < 0 || slot >= int64_t(rows_.size()) || position < 0 ||
            position >= lengths_[size_t(slot)])
            return;
        std::copy_n(values, width, rows_[size_t(slot)].data() + position * width);
        ++received_;
    }

    bool complete() const { return received_ == expected_; }
    const std::vector<float>& rows(size_t slot) const { return rows_[slot]; }

private:
    int64_t final_index_, width_;
    std::vector<int64_t> lengths_;
    std::vector<std::vector<float>> rows_;
    int64_t expected_ = 0, received_ = 0;
};

}  // namespace

Result<SentenceEmbeddingConfig> load_sentence_embedding_config(const std::string& model_directory) {
    const fs::path directory(model_directory);
    auto modules = read_modules(directory);
    if (!modules) return modules.error();
    SentenceEmbeddingConfig config;
    auto transformer = module_directory(directory, modules->transformer);
    if (!transformer) return transformer.error();
    auto pooling = module_directory(directory, modules->pooling);
    if (!pooling) return pooling.error();
    config.transformer_directory = transformer->string();
    config.pooling_directory = pooling->string();
    config.pooling.normalize = modules->normalize;
    MWB_TRY(read_pooling(directory, modules->pooling, config));
    MWB_TRY(read_transformer_options(directory, modules->transformer, config));
    MWB_TRY(read_prompts(directory, config));
    return config;
}

std::vector<float> pool_hidden_states(const PoolingConfig& config, std::span<const float> hidden, int64_t tokens, int64_t width,
                                      int64_t prompt_tokens) {
    if (tokens <= 0 || width <= 0 || hidden.size() != size_t(tokens * width)) return {};
    auto row = [&](int64_t t) { return hidden.data() + t * width; };
    // sentence-transformers masks the prompt out of the mean, max and weighted poolings; cls and last token
    // pick their row regardless.
    const int64_t first = config.include_prompt ? 0 : std::clamp<int64_t>(prompt_tokens, 0, tokens);
    std::vector<float> pooled(size_t(width), 0.0f);
    switch (config.mode) {
        case PoolingMode::Cls: std::copy_n(row(0), width, pooled.begin()); break;
        case PoolingMode::LastToken: std::copy_n(row(tokens - 1), width, pooled.begin()); break;
        case PoolingMode::Max:
            std::fill(pooled.begin(), pooled.end(), -1e9f);  // the value sentence-transformers gives masked tokens
            for (int64_t t = first; t < tokens; ++t)
                for (int64_t j = 0; j < width; ++j) pooled[size_t(j)] = std::max(pooled[size_t(j)], row(t)[j]);
            break;
        case PoolingMode::Mean:
        case PoolingMode::MeanSqrtLen:
        case PoolingMode::WeightedMean: {
            std::vector<double> sum(size_t(width), 0.0);
            double weight_sum = 0;
            for (int64_t t = first; t < tokens; ++t) {
                const double weight = config.mode == PoolingMode::WeightedMean ? double(t + 1) : 1.0;  // positions 1..T
                for (int64_t j = 0; j < width; ++j) sum[size_t(j)] += weight * row(t)[j];
                weight_sum += weight;
            }
            weight_sum = std::max(weight_sum, 1e-9);  // sentence-transformers' clamp: no division by zero
            const double divisor = config.mode == PoolingMode::MeanSqrtLen ? std::sqrt(weight_sum) : weight_sum;
            for (int64_t j = 0; j < width; ++j) pooled[size_t(j)] = float(sum[size_t(j)] / divisor);
            break;
        }
    }
    if (config.normalize) {
        double squares = 0;
        for (float value : pooled) squares += double(value) * value;
        const double scale = 1.0 / std::max(std::sqrt(squares), 1e-12);  // torch.nn.functional.normalize's eps
        for (float& value : pooled) value = float(value * scale);
    }
    return pooled;
}

Result<std::vector<int32_t>> truncate_encoding(std::span<const int32_t> encoded, std::span<const int32_t> text_ids, int64_t max_tokens) {
    if (int64_t(encoded.size()) <= max_tokens) return std::vector<int32_t>(encoded.begin(), encoded.end());
    const auto text = std::search(encoded.begin(), encoded.end(), text_ids.begin(), text_ids.end());
    if (text == encoded.end())
        return make_error("cannot truncate: the tokenizer's post_processor does not keep the text's ids together");
    const int64_t special = int64_t(encoded.size() - text_ids.size());
    if (special >= max_tokens)
        return make_error("a limit of " + std::to_string(max_tokens) + " tokens leaves no room for the text beside the tokenizer's " +
                          std::to_string(special) + " special tokens");
    std::vector<int32_t> truncated(encoded.begin(), text);
    truncated.insert(truncated.end(), text, text + (max_tokens - special));
    truncated.insert(truncated.end(), text + int64_t(text_ids.size()), encoded.end());
    return truncated;
}

Result<TextEmbedder> TextEmbedder::open(const std::string& model_directory, const BackendFactory& make_backend) {
    auto config = load_sentence_embedding_config(model_directory);
    if (!config) return config.error();
    TextEmbedder embedder;
    embedder.config_ = std::move(config.value());
    const std::string& directory = embedder.config_.transformer_directory;
    // transformers 5.2+ reads `is_causal: false` as attention over the whole text; the engine's is causal, and
    // would give other embeddings without a word.
    auto model_json = read_json_object(directory, "config.json");
    if (!model_json) return model_json.error();
    if (auto causal = model_json->find("is_causal"); causal != model_json->end() && *causal == false)
        return make_error((fs::path(directory) / "config.json").string() +
                          ": is_causal is false (bidirectional attention), which the engine does not run; this embedding model cannot be used");
    auto graph = load_base_model_graph(directory);
    if (!graph) return graph.error();
    const ModelConfig& model = graph->config;
    if (embedder.config_.dimension && *embedder.config_.dimension != model.hidden_size)
        return make_error((fs::path(embedder.config_.pooling_directory) / "config.json").string() + ": word_embedding_dimension is " +
                          std::to_string(*embedder.config_.dimension) + " but the model's hidden_size is " + std::to_string(model.hidden_size));
    embedder.dimension_ = model.hidden_size;
    embedder.final_hidden_index_ = model.num_layers;
    embedder.max_tokens_ = embedder.config_.max_seq_length.value_or(model.max_position_embeddings);
    if (model.max_position_embeddings > 0) embedder.max_tokens_ = std::min(embedder.max_tokens_, model.max_position_embeddings);
    if (embedder.max_tokens_ <= 0)
        return make_error("config.json has no max_position_embeddings: set max_seq_length in sentence_bert_config.json");

    if (file_exists(fs::path(directory) / "tokenizer.json")) {
        auto tokenizer = tok::Tokenizer::load(directory);
        if (!tokenizer) return tokenizer.error();
        if (tokenizer->vocab_size() > size_t(model.vocab_size))
            return make_error("tokenizer.json has " + std::to_string(tokenizer->vocab_size()) + " tokens but the model only " +
                              std::to_string(model.vocab_size) + ": it does not belong to this model");
        embedder.tokenizer_.emplace(std::move(tokenizer.value()));
    }

    auto shared_graph = std::make_shared<const ModelGraph>(std::move(graph.value()));
    auto backend = make_backend ? make_backend(shared_graph) : Result<std::unique_ptr<Backend>>(make_cpu_backend(shared_graph));
    if (!backend) return backend.error();
    embedder.backend_ = std::move(backend.value());
    return embedder;
}

std::vector<std::string> TextEmbedder::prompt_names() const {
    std::vector<std::string> names;
    for (const auto& entry : config_.prompts) names.push_back(entry.first);
    return names;
}

Result<std::vector<float>> TextEmbedder::embed_ids(std::span<const int32_t> ids) {
    const EncodedText text{{ids.begin(), ids.end()}, 0};
    auto embeddings = forward_batch({&text, 1});
    if (!embeddings) return embeddings.error();
    return std::move(embeddings->front());
}

Result<std::vector<std::vector<float>>> TextEmbedder::embed_texts(const std::vector<std::string>& texts, std::string_view prompt_name) {
    if (!tokenizer_)
        return make_error((fs::path(config_.transformer_directory) / "tokenizer.json").string() +
                          " is missing: texts cannot be embedded without the model's tokenizer");
    const std::string name = prompt_name.empty() ? config_.default_prompt_name : std::string(prompt_name);
    std::string prompt;
    if (!name.empty()) {
        const auto found = config_.prompts.find(name);
        if (found == config_.prompts.end()) {
            std::string known;
            for (const auto& entry : config_.prompts) known += " '" + entry.first + "'";
            return make_error("config_sentence_transformers.json has no prompt named '" + name + "' (its prompts:" +
                              (known.empty() ? " none" : known) + ")");
        }
        prompt = found->second;
    }
    // sentence-transformers counts the prompt's tokens by encoding it alone, less the one special token it
    // assumes the tokenizer appends.
    int64_t prompt_tokens = 0;
    if (!prompt.empty()) {
        auto ids = encode(prompt);
        if (!ids) return make_error("the prompt '" + name + "': " + ids.error().message);
        prompt_tokens = int64_t(ids->size()) - 1;
    }
    std::vector<EncodedText> encoded;
    for (size_t i = 0; i < texts.size(); ++i) {
        auto ids = encode(prompt + texts[i]);
        if (!ids) return make_error("text " + std::to_string(i + 1) + ": " + ids.error().message);
        encoded.push_back({std::move(ids.value()), prompt_tokens});
    }
    return embed_encoded(encoded);
}

Result<std::vector<int32_t>> TextEmbedder::encode(const std::string& text) const {
    if (!tok::utf8::is_valid(text)) return make_error("the text is not valid UTF-8");
    std::string prepared = strip_whitespace(text);
    if (config_.lower_case) {
        auto lowered = tok::unicode::to_lower(prepared);
        if (!lowered) return lowered.error();
        prepared = std::move(lowered.value());
    }
    auto encoded = tokenizer_->encode(prepared, true);
    if (!encoded || int64_t(encoded->size()) <= max_tokens_) return encoded;
    auto text_ids = tokenizer_->encode(prepared, false);
    if (!text_ids) return text_ids.error();
    return truncate_encoding(*encoded, *text_ids, max_tokens_);
}

Result<std::vector<std::vector<float>>> TextEmbedder::embed_encoded(const std::vector<EncodedText>& texts) {
    std::vector<std::vector<float>> embeddings;
    embeddings.reserve(texts.size());
    for (size_t first = 0; first < texts.size();) {
        size_t end = first + 1;
        int64_t tokens = int64_t(texts[first].ids.size());
        while (end < texts.size() && end - first < kBatchSequences && tokens + int64_t(texts[end].ids.size()) <= kBatchTokens)
            tokens += int64_t(texts[end++].ids.size());
        auto batch = forward_batch(std::span<const EncodedText>(texts).subspan(first, end - first));
        if (!batch) return batch.error();
        for (auto& embedding : *batch) embeddings.push_back(std::move(embedding));
        first = end;
    }
    return embeddings;
}

Result<std::vector<std::vector<float>>> TextEmbedder::forward_batch(std::span<const EncodedText> texts) {
    ForwardBatch batch;  // logits_for_all_tokens stays false: the output is the hidden states, not the logits
    std::vector<int64_t> lengths;
    for (const EncodedText& text : texts) {
        const int64_t length = int64_t(text.ids.size());
        if (length == 0) return make_error("an empty token sequence has no embedding");
        if (length > max_tokens_)
            return make_error(std::to_string(length) + " tokens are more than the " + std::to_string(max_tokens_) +
                              " this model embeds at once (max_seq_length)");
        // Each text in its own slot from position 0, which overwrites whatever the slot held before.
        batch.chunks.push_back({int64_t(lengths.size()), 0, length});
        batch.tokens.insert(batch.tokens.end(), text.ids.begin(), text.ids.end());
        lengths.push_back(length);
    }
    MWB_TRY(fit_cache(int64_t(lengths.size()), *std::max_element(lengths.begin(), lengths.end())));
    FinalHiddenStates hidden(final_hidden_index_, dimension_, lengths);
    auto logits = backend_->forward(batch, &hidden);
    if (!logits) return logits.error();
    if (!hidden.complete()) return make_error("the " + backend_->name() + " backend did not report the final hidden states");
    std::vector<std::vector<float>> embeddings;
    for (size_t i = 0; i < texts.size(); ++i)
        embeddings.push_back(pool_hidden_states(config_.pooling, hidden.rows(i), lengths[i], dimension_, texts[i].prompt_tokens));
    return embeddings;
}

// Re-reserved only when too small, and then for exactly the batch's slots, so that a batch of short texts after
// one long text does not keep a cache of many slots of the long text's length.
Status TextEmbedder::fit_cache(int64_t sequences, int64_t longest) {
    if (backend_->cache_slots() >= sequences && backend_->cache_capacity() >= longest) return {};
    const int64_t capacity = std::min(max_tokens_, (longest + kCacheStep - 1) / kCacheStep * kCacheStep);
    return backend_->reserve_cache(sequences, capacity);
}

}  // namespace mwb
