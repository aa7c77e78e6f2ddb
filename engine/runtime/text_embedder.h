// Sentence embeddings of a sentence-transformers model folder (modules.json: Transformer, Pooling, optional
// Normalize), computed as sentence-transformers computes them: the Transformer's last hidden state (after the
// final norm), one pooling over the tokens, then L2 normalisation when the folder asks for it. For document
// retrieval with embedding checkpoints such as gte-Qwen2-*-instruct.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/backend.h"
#include "engine/tokenizer/tokenizer.h"

namespace mwb {

enum class PoolingMode { Cls, Mean, Max, MeanSqrtLen, LastToken, WeightedMean };

struct PoolingConfig {
    PoolingMode mode = PoolingMode::Mean;
    bool normalize = false;      // a Normalize module follows the Pooling module
    bool include_prompt = true;  // false: the prompt's tokens take no part in the mean, max and weighted poolings
};

// What the sentence-transformers files of a model folder say.
struct SentenceEmbeddingConfig {
    std::string transformer_directory;  // the Transformer module's folder: config.json, weights, tokenizer
    std::string pooling_directory;      // the Pooling module's folder, with its config.json
    PoolingConfig pooling;
    std::optional<int64_t> dimension;       // the Pooling module's word_embedding_dimension
    std::optional<int64_t> max_seq_length;  // sentence_bert_config.json; longer inputs are truncated to it
    bool lower_case = false;                // sentence_bert_config.json do_lower_case
    std::map<std::string, std::string> prompts;  // config_sentence_transformers.json: name → prefix of the text
    std::string default_prompt_name;             // empty: none
};

// Reads modules.json, the Pooling module's config.json and, when present, sentence_bert_config.json and
// config_sentence_transformers.json. Fails for a folder without modules.json (a plain language model), for
// modules other than Transformer → Pooling → optional Normalize, and for several pooling modes at once.
Result<SentenceEmbeddingConfig> load_sentence_embedding_config(const std::string& model_directory);

// One embedding of `width` values from the hidden states [tokens, width] (row-major) of one text. The first
// `prompt_tokens` are left out where sentence-transformers masks the prompt (include_prompt false). Empty when
// `hidden` does not hold tokens × width values or tokens is not positive.
std::vector<float> pool_hidden_states(const PoolingConfig& config, std::span<const float> hidden, int64_t tokens, int64_t width,
                                      int64_t prompt_tokens = 0);

// Truncation as Hugging Face tokenizers does it (truncation=True, right side): `encoded` is the text encoded
// with special tokens, `text_ids` without; the text's last ids are dropped until the whole fits `max_tokens`,
// the special tokens around it kept. Fails when the special tokens alone do not fit.
Result<std::vector<int32_t>> truncate_encoding(std::span<const int32_t> encoded, std::span<const int32_t> text_ids, int64_t max_tokens);

// Builds the backend for the loaded graph (the CUDA one in the app); the CPU backend when empty.
using BackendFactory = std::function<Result<std::unique_ptr<Backend>>(std::shared_ptr<const ModelGraph>)>;

// One caller at a time: every call reuses the backend's KV cache.
class TextEmbedder {
public:
    // Loads the Transformer module's weights and, when it has one, its tokenizer.json.
    static Result<TextEmbedder> open(const std::string& model_directory, const BackendFactory& make_backend = {});

    int64_t dimension() const { return dimension_; }
    // Longest input in tokens: max_seq_length, within the model's max_position_embeddings.
    int64_t max_tokens() const { return max_tokens_; }
    std::vector<std::string> prompt_names() const;
    const SentenceEmbeddingConfig& config() const { return config_; }

    // Token ids as the model sees them, special tokens included; at most max_tokens().
    Result<std::vector<float>> embed_ids(std::span<const int32_t> ids);
    // The prompt named `prompt_name` (the folder's default prompt when empty) is put before each text, which is
    // then stripped of surrounding whitespace, tokenized with the tokenizer's special tokens and truncated to
    // max_tokens(), as SentenceTransformer.encode does. Needs the folder's tokenizer.json.
    Result<std::vector<std::vector<float>>> embed_texts(const std::vector<std::string>& texts, std::string_view prompt_name = {});

private:
    struct EncodedText {
        std::vector<int32_t> ids;
        int64_t prompt_tokens = 0;
    };

    TextEmbedder() = default;
    Result<std::vector<int32_t>> encode(const std::string& text) const;
    Result<std::vector<std::vector<float>>> embed_encoded(const std::vector<EncodedText>& texts);
    Result<std::vector<std::vector<float>>> forward_batch(std::span<const EncodedText> texts);
    Status fit_cache(int64_t sequences, int64_t longest);

    SentenceEmbeddingConfig config_;
    std::optional<tok::Tokenizer> tokenizer_;
    std::unique_ptr<Backend> backend_;
    int64_t final_hidden_index_ = 0;  // on_hidden_state's index after the final norm: num_layers
    int64_t dimension_ = 0;
    int64_t max_tokens_ = 0;
};

}  // namespace mwb
