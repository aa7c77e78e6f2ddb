#include "engine/tokenizer/tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <unordered_map>

#include "engine/core/json_nesting.h"
#include "engine/core/text_file.h"
#include "engine/tokenizer/added_vocabulary.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/decoders.h"
#include "engine/tokenizer/normalizers.h"
#include "engine/tokenizer/post_processors.h"
#include "engine/tokenizer/pre_tokenizers.h"
#include "engine/tokenizer/utf8.h"

namespace mwb::tok {

struct Tokenizer::Impl {
    BpeModel model;
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> pre_tokenizer;
    std::unique_ptr<PostProcessor> post_processor;
    std::unique_ptr<Decoder> decoder;
    std::unordered_map<int32_t, AddedToken> added_by_id;
    std::unordered_map<std::string, int32_t> added_by_content;
    AddedTokenMatcher raw_matcher;         // tokens with normalized == false, matched in the input
    AddedTokenMatcher normalized_matcher;  // tokens with normalized == true, matched after normalization
    size_t id_bound = 0;
    std::optional<int32_t> bos_id;
    std::optional<int32_t> eos_id;
    TemplateJson special_token_strings = TemplateJson::object();
    std::optional<ChatTemplate> chat_template;

    void encode_text(std::string_view text, bool at_input_start, std::vector<int32_t>& ids, Status& status) const;
};

namespace {

// Present at all (a stat, no open: opening a FIFO would block); read_text_file then refuses what is not a
// regular file.
bool file_exists(const std::string& path) {
    std::error_code error;
    return std::filesystem::exists(path, error);
}

Result<nlohmann::json> parse_json(const std::string& text, const std::string& what) {
    MWB_TRY(check_json_nesting(text, what));
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& error) {  // syntax, and numbers such as 1e400 beyond a double
        return make_error(what + ": not valid JSON (" + error.what() + ")");
    }
}

constexpr size_t kMaxAddedTokenBytes = 1024;

Result<std::vector<AddedToken>> parse_added_tokens(const nlohmann::json& root) {
    std::vector<AddedToken> tokens;
    auto list = root.find("added_tokens");
    if (list == root.end() || list->is_null()) return tokens;
    if (!list->is_array()) return make_error("added_tokens must be an array");
    for (const auto& entry : *list) {
        if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() || entry["id"].get<int64_t>() < 0 ||
            entry["id"].get<int64_t>() >= (1 << 24) || !entry.contains("content") || !entry["content"].is_string())
            return make_error("added_tokens: every entry needs an integer 'id' (0 to 16777215) and a string 'content'");
        AddedToken token;
        token.id = entry["id"].get<int32_t>();
        token.content = entry["content"].get<std::string>();
        // The matcher walks a token's bytes at every position where it could start: a 100 KB token made a 100 KB
        // text take 20 s. Real added tokens are a few dozen bytes.
        if (token.content.size() > kMaxAddedTokenBytes)
            return make_error("added_tokens: token " + std::to_string(token.id) + " is " + std::to_string(token.content.size()) +
                              " bytes long; at most " + std::to_string(kMaxAddedTokenBytes) + " are accepted");
        const auto flag = [&](const char* key, bool fallback) {
            auto it = entry.find(key);
            return it != entry.end() && it->is_boolean() ? it->get<bool>() : fallback;
        };
        token.special = flag("special", false);
        token.normalized = flag("normalized", !token.special);
        token.lstrip = flag("lstrip", false);
        token.rstrip = flag("rstrip", false);
        token.single_word = flag("single_word", false);
        tokens.push_back(std::move(token));
    }
    return tokens;
}

// A special token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
    auto it = config.find(key);
    if (it == config.end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
    return std::nullopt;
}

Result<std::optional<std::string>> config_chat_template(const nlohmann::json& config) {
    auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) return std::optional<std::string>();
    if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
    if (it->is_array()) {
        // Named templates: the "default" one, as transformers uses when no other is asked for.
        for (const auto& entry : *it)
            if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
                entry["template"].is_string())
                return std::optional<std::string>(entry["template"].get<std::string>());
        return make_error("tokenizer_config.json: chat_template list has no template named 'default'");
    }
    return make_error("tokenizer_config.json: chat_template must be a string or a list of named templates");
}

}  // namespace

Result<Tokenizer> Tokenizer::load(const std::string& directory) {
    auto tokenizer_json = read_text_file(directory + "/tokenizer.json");
    if (!tokenizer_json) return tokenizer_json.error();
    std::string config_json, template_source;
    if (file_exists(directory + "/tokenizer_config.json")) {
        auto config = read_text_file(directory + "/tokenizer_config.json");
        if (!config) return config.error();
        config_json = std::move(config.value());
    }
    if (file_exists(directory + "/chat_template.jinja")) {
        auto source = read_text_file(directory + "/chat_template.jinja");
        if (!source) return source.error();
        template_source = std::move(source.value());
    }
    return from_json(*tokenizer_json, config_json, template_source);
}

Result<Tokenizer> Tokenizer::from_json(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                                       const std::string& chat_template_source) {
    // Every check of the tokenizer files returns an error; a value of the wrong JSON type that no check names
    // (a non-string where a string belongs) still becomes an error here, never an uncaught exception.
    try {
        return build(tokenizer_json, tokenizer_config_json, chat_template_source);
    } catch (const std::exception& error) {  // nlohmann's type and range errors among them
        return make_error(std::string("tokenizer files: ") + error.what());
    }
}

Result<Tokenizer> Tokenizer::build(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                                   const std::string& chat_template_source) {
    auto root = parse_json(tokenizer_json, "tokenizer.json");
    if (!root) return root.error();
    if (!root->is_object()) return make_error("tokenizer.json: the top level must be a JSON object");
    const auto prefixed = [](const Error& error) { return make_error("tokenizer.json: " + error.message); };
    auto impl = std::make_shared<Impl>();

    auto model = root->find("model");
    if (model == root->end()) return make_error("tokenizer.json: no 'model'");
    auto bpe = BpeModel::from_json(*model);
    if (!bpe) return prefixed(bpe.error());
    impl->model = std::move(bpe.value());
    impl->id_bound = impl->model.id_bound();

    const auto component = [&](const char* key) -> const nlohmann::json& {
        static const nlohmann::json null_json;
        auto it = root->find(key);
        return it == root->end() ? null_json : *it;
    };
    auto normalizer = make_normalizer(component("normalizer"));
    if (!normalizer) return prefixed(normalizer.error());
    impl->normalizer = std::move(normalizer.value());
    auto pre_tokenizer = make_pre_tokenizer(component("pre_tokenizer"));
    if (!pre_tokenizer) return prefixed(pre_tokenizer.error());
    impl->pre_tokenizer = std::move(pre_tokenizer.value());
    auto post_processor = make_post_processor(component("post_processor"));
    if (!post_processor) return prefixed(post_processor.error());
    impl->post_processor = std::move(post_processor.value());
    auto decoder = make_decoder(component("decoder"));
    if (!decoder) return prefixed(decoder.error());
    impl->decoder = std::move(decoder.value());

    auto added = parse_added_tokens(*root);
    if (!added) return prefixed(added.error());
    for (auto& token : added.value()) {
        if (token.normalized && impl->normalizer) {
            auto normalized = impl->normalizer->normalize(token.content);
            if (!normalized) return prefixed(normalized.error());
            impl->normalized_matcher.add(token, std::move(normalized.value()));
        } else if (token.normalized) {
            impl->normalized_matcher.add(token, token.content);
        } else {
            impl->raw_matcher.add(token, token.content);
        }
        impl->id_bound = std::max(impl->id_bound, static_cast<size_t>(token.id) + 1);
        impl->added_by_content[token.content] = token.id;
        impl->added_by_id[token.id] = std::move(token);
    }
    if (impl->post_processor)
        for (int32_t id : impl->post_processor->added_ids())
            if (size_t(id) >= impl->id_bound)
                return make_error("tokenizer.json: the post_processor adds token id " + std::to_string(id) + ", outside the vocabulary of " +
                                  std::to_string(impl->id_bound) + " ids");

    if (!tokenizer_config_json.empty()) {
        auto config = parse_json(tokenizer_config_json, "tokenizer_config.json");
        if (!config) return config.error();
        if (!config->is_object()) return make_error("tokenizer_config.json: the top level must be a JSON object");
        for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
            if (auto text = config_token(*config, key)) impl->special_token_strings[key] = *text;
        }
        if (auto bos = config_token(*config, "bos_token")) {
            if (auto it = impl->added_by_content.find(*bos); it != impl->added_by_content.end()) impl->bos_id = it->second;
            else impl->bos_id = impl->model.token_to_id(*bos);
        }
        if (auto eos = config_token(*config, "eos_token")) {
            if (auto it = impl->added_by_content.find(*eos); it != impl->added_by_content.end()) impl->eos_id = it->second;
            else impl->eos_id = impl->model.token_to_id(*eos);
        }
        auto source = config_chat_template(*config);
        if (!source) return source.error();
        if (source.value() && chat_template_source.empty()) {
            auto parsed = ChatTemplate::parse(**source);
            if (!parsed) return make_error("tokenizer_config.json: " + parsed.error().message);
            impl->chat_template = std::move(parsed.value());
        }
    }
    if (!chat_template_source.empty()) {
        auto parsed = ChatTemplate::parse(chat_template_source);
        if (!parsed) return make_error("chat_template.jinja: " + parsed.error().message);
        impl->chat_template = std::move(parsed.value());
    }

    Tokenizer tokenizer;
    tokenizer.impl_ = std::move(impl);
    return tokenizer;
}

void Tokenizer::Impl::encode_text(std::string_view text, bool at_input_start, std::vector<int32_t>& ids,
                                  Status& status) const {
    std::string normalized_text;
    if (normalizer) {
        auto normalized = normalizer->normalize(std::string(text));
        if (!normalized) {
            status = normalized.error();
            return;
        }
        normalized_text = std::move(normalized.value());
        text = normalized_text;
    }
    std::vector<AddedSplit> splits;
    if (normalized_matcher.empty())
        splits.push_back({0, text.size(), -1});
    else
        splits = normalized_matcher.split(text);
    std::vector<PreToken> pieces;
    for (const auto& split : splits) {
        if (split.token_id >= 0) {
            ids.push_back(split.token_id);
            continue;
        }
        if (split.start == split.end) continue;
        pieces.clear();
        pieces.push_back({std::string(text.substr(split.start, split.end - split.start)), at_input_start && split.start == 0});
        if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
        for (const auto& piece : pieces) {
            if (!model.tokenize(piece.text, ids)) {
                status = make_error("encode: the text holds a character missing from the vocabulary and unk_token '" +
                                    model.unk_token() + "' is not in the vocabulary either");
                return;
            }
        }
    }
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
    if (!utf8::is_valid(text)) return make_error("encode: the text is not valid UTF-8");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    Status status;
    if (impl_->raw_matcher.empty()) {
        if (!text.empty()) impl_->encode_text(text, true, ids, status);
    } else {
        for (const auto& split : impl_->raw_matcher.split(text)) {
            if (split.token_id >= 0)
                ids.push_back(split.token_id);
            else
                impl_->encode_text(text.substr(split.start, split.end - split.start), split.start == 0, ids, status);
            if (!status.ok()) break;
        }
    }
    if (!status.ok()) return status.error();
    if (add_special_tokens && impl_->post_processor) impl_->post_processor->add_special_tokens(ids);
    return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        if (auto added = impl_->added_by_id.find(id); added != impl_->added_by_id.end()) {
            if (skip_special_tokens && added->second.special) continue;
            tokens.push_back(added->second.content);
        } else if (const std::string* token = impl_->model.id_to_token(id)) {
            tokens.push_back(*token);
        }
    }
    std::string text;
    if (impl_->decoder) {
        impl_->decoder->decode_chain(tokens);
        for (const auto& token : tokens) text += token;
    } else {
        for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    }
    return text;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    if (auto it = impl_->added_by_content.find(std::string(token)); it != impl_->added_by_content.end()) return it->second;
    return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
    if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return it->second.content;
    if (const std::string* token = impl_->model.id_to_token(id)) return *token;
    return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
    auto it = impl_->added_by_id.find(id);
    return it != impl_->added_by_id.end() && it->second.special;
}

size_t Tokenizer::vocab_size() const { return impl_->id_bound; }

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }

std::vector<int32_t> Tokenizer::eos_ids() const {
    if (impl_->eos_id) return {*impl_->eos_id};
    return {};
}

bool Tokenizer::has_chat_template() const { return impl_->chat_template.has_value(); }

Result<std::string> Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                                   const TemplateJson& extra) const {
    TemplateJson list = TemplateJson::array();
    for (const auto& message : messages) list.push_back(message.to_json());
    return apply_chat_template_json(list, add_generation_prompt, extra);
}

Result<std::string> Tokenizer::apply_chat_template_json(const TemplateJson& messages, bool add_generation_prompt,
                                                        const TemplateJson& extra) const {
    if (!impl_->chat_template) return make_error("this tokenizer has no chat_template (tokenizer_config.json)");
    return impl_->chat_template->render(messages, add_generation_prompt, impl_->special_token_strings, extra);
}

}  // namespace mwb::tok
