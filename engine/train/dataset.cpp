#include "engine/train/dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <optional>
#include <random>

#include "engine/io/safetensors.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/lora_model.h"

namespace mwb::train {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void add_row(Dataset& dataset, TokenRow row, int64_t cutoff) {
    if (int64_t(row.ids.size()) > cutoff) {
        row.ids.resize(size_t(cutoff));
        row.labels.resize(size_t(cutoff));
        ++dataset.stats.truncated_rows;
    }
    dataset.stats.rows += 1;
    dataset.stats.tokens += int64_t(row.ids.size());
    dataset.stats.label_tokens += counted_labels(row.labels);
    dataset.rows.push_back(std::move(row));
}

Result<Dataset> load_tokenized(const std::string& path, const DatasetOptions& options) {
    auto file = TensorStore::open_file(path);
    if (!file) return file.error();
    const std::string ids_name = file->contains("data") ? "data" : "input_ids";
    if (!file->contains(ids_name) || !file->contains("labels"))
        return make_error(path + " is not a pre-tokenized dataset: it needs int64 tensors 'data' (or 'input_ids') and 'labels', [rows, tokens]");
    const TensorView ids_view = *file->get(ids_name);
    const TensorView labels_view = *file->get("labels");
    if (ids_view.shape.size() != 2 || labels_view.shape != ids_view.shape)
        return make_error(path + ": '" + ids_name + "' " + shape_text(ids_view.shape) + " and 'labels' " + shape_text(labels_view.shape) +
                          " must both be [rows, tokens]");
    auto ids = file->read_int64(ids_name);
    if (!ids) return ids.error();
    auto labels = file->read_int64("labels");
    if (!labels) return labels.error();
    Dataset dataset;
    const int64_t rows = ids_view.shape[0], tokens = ids_view.shape[1];
    for (int64_t r = 0; r < rows; ++r) {
        TokenRow row;
        for (int64_t t = 0; t < tokens; ++t) {
            const int64_t id = (*ids)[size_t(r * tokens + t)];
            if (id < 0 || id > INT32_MAX) return make_error(path + ": row " + std::to_string(r) + " has token id " + std::to_string(id));
            row.ids.push_back(int32_t(id));
            row.labels.push_back((*labels)[size_t(r * tokens + t)]);
        }
        add_row(dataset, std::move(row), options.cutoff);
    }
    return dataset;
}

// A line's conversation in OpenAI's message form, from any of the JSONL formats; `where` prefixes errors.
Result<std::vector<tok::ChatMessage>> conversation_of(const nlohmann::json& line, const std::string& where) {
    auto text_field = [&](const nlohmann::json& object, const char* field, bool required) -> Result<std::string> {
        if (!object.contains(field)) {
            if (required) return make_error(where + ": field '" + field + "' is missing");
            return std::string();
        }
        if (!object[field].is_string()) return make_error(where + ": field '" + field + "' must be a string");
        return object[field].get<std::string>();
    };
    auto message = [](std::string role, std::string content) {
        return tok::ChatMessage{std::move(role), std::move(content), {}, {}, tok::TemplateJson::object()};
    };
    std::vector<tok::ChatMessage> messages;
    if (line.contains("messages") || line.contains("conversations")) {
        const bool sharegpt = !line.contains("messages");
        const char* list_field = sharegpt ? "conversations" : "messages";
        const nlohmann::json& list = line[list_field];
        if (!list.is_array() || list.empty()) return make_error(where + ": field '" + std::string(list_field) + "' must be a non-empty array");
        for (size_t i = 0; i < list.size(); ++i) {
            const std::string item = where + ": " + list_field + "[" + std::to_string(i) + "]";
            if (!list[i].is_object()) return make_error(item + " must be an object");
            auto role = text_field(list[i], sharegpt ? "from" : "role", true);
            if (!role) return make_error(item + ": " + role.error().message.substr(where.size() + 2));
            auto content = text_field(list[i], sharegpt ? "value" : "content", true);
            if (!content) return make_error(item + ": " + content.error().message.substr(where.size() + 2));
            std::string r = *role;
            if (sharegpt) r = r == "human" ? "user" : r == "gpt" ? "assistant" : r;
            if (r != "system" && r != "user" && r != "assistant" && r != "tool")
                return make_error(item + ": unknown role '" + *role + "' (system, user, assistant" + (sharegpt ? "; human, gpt" : "") + ")");
            messages.push_back(message(r, *content));
        }
        return messages;
    }
    if (line.contains("instruction")) {
        auto instruction = text_field(line, "instruction", true);
        if (!instruction) return instruction.error();
        auto input = text_field(line, "input", false);
        if (!input) return input.error();
        auto output = text_field(line, "output", true);
        if (!output) return output.error();
        auto system = text_field(line, "system", false);
        if (!system) return system.error();
        if (!system->empty()) messages.push_back(message("system", *system));
        if (line.contains("history")) {
            const nlohmann::json& history = line["history"];
            if (!history.is_array()) return make_error(where + ": field 'history' must be an array of [question, answer] pairs");
            for (size_t i = 0; i < history.size(); ++i) {
                if (!history[i].is_array() || history[i].size() != 2 || !history[i][0].is_string() || !history[i][1].is_string())
                    return make_error(where + ": history[" + std::to_string(i) + "] must be a [question, answer] pair of strings");
                messages.push_back(message("user", history[i][0].get<std::string>()));
                messages.push_back(message("assistant", history[i][1].get<std::string>()));
            }
        }
        messages.push_back(message("user", input->empty() ? *instruction : *instruction + "\n" + *input));
        messages.push_back(message("assistant", *output));
        return messages;
    }
    return make_error(where + ": no field of a known format (messages, conversations, instruction/output, text)");
}

// The conversation's tokens, with labels on the assistant turns (or on everything): each assistant turn is the
// stretch between the conversation before it with the generation prompt and the conversation through it.
Result<TokenRow> tokenize_conversation(const tok::Tokenizer& tokenizer, const std::vector<tok::ChatMessage>& messages, bool all_labels,
                                       const std::string& where) {
    auto render = [&](size_t count, bool generation_prompt) -> Result<std::vector<int32_t>> {
        const std::vector<tok::ChatMessage> head(messages.begin(), messages.begin() + long(count));
        auto text = tokenizer.apply_chat_template(head, generation_prompt);
        if (!text) return make_error(where + ": the chat template failed: " + text.error().message);
        return tokenizer.encode(*text, false);
    };
    auto full = render(messages.size(), false);
    if (!full) return full.error();
    TokenRow row;
    row.ids = std::move(full.value());
    row.labels.assign(row.ids.size(), all_labels ? 0 : kIgnoredLabel);
    if (all_labels) {
        for (size_t t = 0; t < row.ids.size(); ++t) row.labels[t] = row.ids[t];
        return row;
    }
    bool any = false;
    for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].role != "assistant") continue;
        auto before = render(i, true);
        if (!before) return before.error();
        auto through = render(i + 1, false);
        if (!through) return through.error();
        const size_t begin = before->size(), end = std::min(through->size(), row.ids.size());
        if (begin > end || !std::equal(before->begin(), before->end(), row.ids.begin()))
            return make_error(where + ": the chat template does not render this conversation turn by turn, so the assistant's tokens "
                                      "cannot be found; train on all tokens or use a pre-tokenized file");
        for (size_t t = begin; t < end; ++t) row.labels[t] = row.ids[t];
        any = any || end > begin;
    }
    if (!any) return make_error(where + ": the conversation has no assistant message to learn from");
    return row;
}

Result<TokenRow> tokenize_text(const tok::Tokenizer& tokenizer, const std::string& text) {
    auto ids = tokenizer.encode(text, true);
    if (!ids) return ids.error();
    const std::vector<int32_t> eos = tokenizer.eos_ids();
    if (!eos.empty()) ids->push_back(eos.front());  // the document ends, as pre-training data does
    TokenRow row;
    row.ids = std::move(ids.value());
    row.labels.assign(row.ids.begin(), row.ids.end());
    return row;
}

Result<Dataset> load_jsonl(const std::string& path, const tok::Tokenizer& tokenizer, const DatasetOptions& options) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return make_error("cannot open the dataset " + path);
    Dataset dataset;
    std::string text;
    for (int64_t number = 1; std::getline(file, text); ++number) {
        if (!text.empty() && text.back() == '\r') text.pop_back();
        if (text.find_first_not_of(" \t") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(number);
        Result<TokenRow> row = [&]() -> Result<TokenRow> {
            nlohmann::json line;
            try {
                line = nlohmann::json::parse(text);
            } catch (const nlohmann::json::exception& error) {
                return make_error(where + ": not valid JSON (" + error.what() + ")");
            }
            if (!line.is_object()) return make_error(where + ": each line must be a JSON object");
            if (line.contains("text") && !line.contains("messages") && !line.contains("conversations") && !line.contains("instruction")) {
                if (!line["text"].is_string()) return make_error(where + ": field 'text' must be a string");
                return tokenize_text(tokenizer, line["text"].get<std::string>());
            }
            auto messages = conversation_of(line, where);
            if (!messages) return messages.error();
            return tokenize_conversation(tokenizer, *messages, options.train_on_prompt, where);
        }();
        if (!row) {
            if (!options.skip_bad_lines) return row.error();
            ++dataset.stats.skipped_lines;
            if (dataset.stats.bad_lines.size() < DatasetStats::kMaxReportedBadLines) dataset.stats.bad_lines.emplace_back(number, row.error().message);
            continue;
        }
        add_row(dataset, std::move(row.value()), options.cutoff);
    }
    if (dataset.rows.empty()) return make_error(path + " holds no usable training rows");
    return dataset;
}

}  // namespace

Dataset split_validation(Dataset& data, double fraction, uint64_t seed) {
    Dataset validation;
    const int64_t held_out = int64_t(double(data.rows.size()) * fraction);
    if (held_out <= 0) return validation;
    std::shuffle(data.rows.begin(), data.rows.end(), std::mt19937_64(seed + 17));
    validation.rows.assign(data.rows.end() - held_out, data.rows.end());
    data.rows.resize(data.rows.size() - size_t(held_out));
    validation.stats.rows = held_out;
    return validation;
}

bool needs_tokenizer(const std::string& path) { return !ends_with(path, ".safetensors"); }

Result<TrainingData> load_training_data(const std::string& path, const std::string& tokenizer_directory, const DatasetOptions& options,
                                        double validation_split, uint64_t seed) {
    if (!(validation_split >= 0 && validation_split < 1)) return make_error("the validation split is a fraction of the rows, in [0, 1)");
    std::optional<tok::Tokenizer> tokenizer;
    if (needs_tokenizer(path)) {
        auto loaded = tok::Tokenizer::load(tokenizer_directory);
        if (!loaded) return make_error(loaded.error().message + " (a JSONL dataset is read with the model's tokenizer: choose the folder that holds its tokenizer.json)");
        tokenizer = std::move(loaded.value());
    }
    auto dataset = load_dataset(path, tokenizer ? &*tokenizer : nullptr, options);
    if (!dataset) return dataset.error();
    TrainingData data{std::move(dataset.value()), {}};
    data.validation = split_validation(data.train, validation_split, seed);
    return data;
}

Result<Dataset> load_dataset(const std::string& path, const tok::Tokenizer* tokenizer, const DatasetOptions& options) {
    if (options.cutoff < 2) return make_error("the cutoff must be at least 2 tokens");
    if (!needs_tokenizer(path)) return load_tokenized(path, options);
    if (!tokenizer) return make_error("a JSONL dataset needs the model's tokenizer (tokenizer.json in the model folder, or --tokenizer DIR)");
    return load_jsonl(path, *tokenizer, options);
}

}  // namespace mwb::train
