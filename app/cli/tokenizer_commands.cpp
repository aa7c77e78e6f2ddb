// mwb tokenize / detokenize / template / bench-tokenizer.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "engine/core/json_nesting.h"
#include "engine/core/text_file.h"
#include "engine/tokenizer/tokenizer.h"

namespace mwb::cli {
namespace {

Result<tok::Tokenizer> load_tokenizer(const CliArgs& args) {
    auto directory = args.get("tokenizer");
    if (!directory) return make_error("--tokenizer DIR is required");
    return tok::Tokenizer::load(*directory);
}

std::string ids_line(const std::vector<int32_t>& ids) { return nlohmann::json{{"ids", ids}}.dump() + "\n"; }

}  // namespace

int run_tokenize(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"special"}, {"tokenizer", "text", "jsonl"});
    if (!args) return fail(args.error().message);
    auto tokenizer = load_tokenizer(*args);
    if (!tokenizer) return fail(tokenizer.error().message);
    const bool add_special = args->has("special");
    auto text = args->get("text");
    auto jsonl = args->get("jsonl");
    if (text.has_value() == jsonl.has_value()) return fail("give exactly one of --text T and --jsonl FILE");
    if (text) {
        auto ids = tokenizer->encode(*text, add_special);
        if (!ids) return fail(ids.error().message);
        std::fputs(ids_line(*ids).c_str(), stdout);
        return 0;
    }
    std::ifstream file(*jsonl, std::ios::binary);
    if (!file) return fail("cannot open " + *jsonl);
    std::string line, out;
    for (size_t number = 1; std::getline(file, line); ++number) {
        if (line.empty() || line == "\r") continue;
        const std::string where = *jsonl + ":" + std::to_string(number) + ": ";
        if (auto nesting = check_json_nesting(line, "the line"); !nesting) return fail(where + nesting.error().message);
        nlohmann::json item;
        try {
            item = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& error) {  // says "ill-formed UTF-8 byte" for text that is not UTF-8
            return fail(where + "not valid JSON (" + error.what() + ")");
        }
        if (!item.is_object() || !item.contains("text") || !item["text"].is_string())
            return fail(where + "expected a JSON object with a string \"text\"");
        auto ids = tokenizer->encode(item["text"].get<std::string>(), add_special);
        if (!ids) return fail(*jsonl + ":" + std::to_string(number) + ": " + ids.error().message);
        out += ids_line(*ids);
    }
    std::fputs(out.c_str(), stdout);
    return 0;
}

int run_detokenize(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"skip-special"}, {"tokenizer", "ids"});
    if (!args) return fail(args.error().message);
    if (!args->has("ids")) return fail("--ids 1,2,3 is required");
    auto ids = args->integer_list("ids");
    if (!ids) return fail(ids.error().message);
    auto tokenizer = load_tokenizer(*args);
    if (!tokenizer) return fail(tokenizer.error().message);
    std::vector<int32_t> token_ids;
    for (long long id : *ids) {
        if (id < 0 || static_cast<size_t>(id) >= tokenizer->vocab_size())
            return fail("--ids: " + std::to_string(id) + " is not a token id (vocabulary size " +
                        std::to_string(tokenizer->vocab_size()) + ")");
        token_ids.push_back(static_cast<int32_t>(id));
    }
    std::string text = tokenizer->decode(token_ids, args->has("skip-special"));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
}

int run_template(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"generation-prompt"}, {"tokenizer", "messages"});
    if (!args) return fail(args.error().message);
    auto path = args->get("messages");
    if (!path) return fail("--messages FILE.json is required");
    auto tokenizer = load_tokenizer(*args);
    if (!tokenizer) return fail(tokenizer.error().message);
    auto contents = read_text_file(*path);
    if (!contents) return fail(contents.error().message);
    if (auto nesting = check_json_nesting(*contents, *path); !nesting) return fail(nesting.error().message);
    tok::TemplateJson document = tok::TemplateJson::parse(*contents, nullptr, false);
    if (document.is_discarded()) return fail(*path + ": not valid JSON");
    tok::TemplateJson messages, extra = tok::TemplateJson::object();
    if (document.is_array()) {
        messages = document;
    } else if (document.is_object() && document.contains("messages") && document["messages"].is_array()) {
        messages = document["messages"];
        if (document.contains("tools")) extra["tools"] = document["tools"];
    } else {
        return fail(*path + ": expected a messages array or an object with \"messages\" (and optional \"tools\")");
    }
    auto text = tokenizer->apply_chat_template_json(messages, args->has("generation-prompt"), extra);
    if (!text) return fail(text.error().message);
    std::fwrite(text->data(), 1, text->size(), stdout);
    std::fputc('\n', stdout);
    return 0;
}

int run_bench_tokenizer(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {}, {"tokenizer", "file"});
    if (!args) return fail(args.error().message);
    auto path = args->get("file");
    if (!path) return fail("--file F is required");
    auto tokenizer = load_tokenizer(*args);
    if (!tokenizer) return fail(tokenizer.error().message);
    auto text = read_text_file(*path);
    if (!text) return fail(text.error().message);
    if (text->empty()) return fail(*path + " is empty");
    // Encode line by line, as a dataset is, repeating the file until at least a second has passed. The
    // first pass runs with the per-word cache still empty and is reported on its own.
    std::vector<std::string> lines;
    std::istringstream stream(*text);
    for (std::string line; std::getline(stream, line);) lines.push_back(line + "\n");
    using Clock = std::chrono::steady_clock;
    size_t bytes = 0, tokens = 0, passes = 0;
    auto start = Clock::now();
    double seconds = 0, first_pass_seconds = 0;
    do {
        for (const auto& line : lines) {
            auto ids = tokenizer->encode(line, false);
            if (!ids) return fail(ids.error().message);
            tokens += ids->size();
            bytes += line.size();
        }
        ++passes;
        seconds = std::chrono::duration<double>(Clock::now() - start).count();
        if (passes == 1) first_pass_seconds = seconds;
    } while (seconds < 1.0);
    nlohmann::json report = {{"file", *path},
                             {"bytes", bytes},
                             {"tokens", tokens},
                             {"passes", passes},
                             {"seconds", seconds},
                             {"mb_per_s", static_cast<double>(bytes) / 1e6 / seconds},
                             {"tokens_per_s", static_cast<double>(tokens) / seconds},
                             {"first_pass_mb_per_s", static_cast<double>(text->size()) / 1e6 / first_pass_seconds},
                             {"threads", 1}};
    std::printf("%s\n", report.dump().c_str());
    return 0;
}

}  // namespace mwb::cli
