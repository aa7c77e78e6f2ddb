// mwb docs index / search / ask / list: the document index of the history database from the command line.
#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QUuid>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "app/cli/model_options.h"
#include "app/documents/document_ingest.h"
#include "app/documents/embedding_model.h"
#include "app/documents/grounded_prompt.h"
#include "app/documents/ocr_engine.h"
#include "app/documents/retrieval.h"
#include "app/services/run_database.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/tokenizer/streaming_detokenizer.h"

namespace mwb::cli {

namespace {

using app::DocumentStore;

std::string utf8(const QString& text) { return text.toStdString(); }
QString qstring(const std::string& text) { return QString::fromStdString(text); }

// The history database `--db FILE` names, opened (and migrated) on this thread.
Result<std::unique_ptr<app::RunDatabase>> open_database(const CliArgs& args) {
    auto path = args.get("db");
    if (!path) return make_error("give the index database with --db FILE (the app's is history.sqlite in its data folder)");
    auto db = std::make_unique<app::RunDatabase>(QStringLiteral("mwb-docs-") + QUuid::createUuid().toString(QUuid::WithoutBraces));
    MWB_TRY(db->open(qstring(*path)));
    return db;
}

Result<std::unique_ptr<app::EmbeddingModel>> open_embedding(const CliArgs& args) {
    auto folder = args.get("embed");
    if (!folder) return std::unique_ptr<app::EmbeddingModel>();
    return app::EmbeddingModel::open(qstring(*folder), qstring(args.get_or("device", "cpu")));
}

Result<app::RetrievalOptions> retrieval_options(const CliArgs& args) {
    auto top = args.integer_or("top", 5);
    if (!top) return top.error();
    if (*top < 1 || *top > 100) return make_error("--top must be between 1 and 100");
    app::RetrievalOptions options;
    options.top = int(*top);
    options.candidates = std::max(options.candidates, options.top);
    return options;
}

const char* state_name(app::FileOutcome::State state) {
    switch (state) {
    case app::FileOutcome::State::Indexed: return "indexed";
    case app::FileOutcome::State::Unchanged: return "unchanged";
    case app::FileOutcome::State::Failed: return "failed";
    case app::FileOutcome::State::Cancelled: return "cancelled";
    }
    return "";
}

int run_index(const CliArgs& args) {
    auto db = open_database(args);
    if (!db) return fail(db.error().message);
    QStringList paths;
    for (size_t i = 1; i < args.positionals().size(); ++i) paths << qstring(args.positionals()[i]);
    if (paths.isEmpty()) return fail("give the files or folders to index: mwb docs index --db FILE PATH...");
    app::IngestOptions options;
    options.collection = qstring(args.get_or("collection", ""));
    options.ocr_languages = qstring(args.get_or("ocr-lang", "eng"));
    auto tokens = args.integer_or("chunk-tokens", options.chunks.tokens);
    auto overlap = args.integer_or("overlap", options.chunks.overlap);
    if (!tokens || !overlap || *tokens < 8 || *overlap < 0 || *overlap >= *tokens)
        return fail("--chunk-tokens must be at least 8 and --overlap between 0 and the chunk size");
    options.chunks = {int(*tokens), int(*overlap)};
    auto embedding = open_embedding(args);
    if (!embedding) return fail(embedding.error().message);

    DocumentStore store((*db)->connection());
    auto report = app::ingest_documents(store, paths, options, [](const app::IngestProgress& p) {
        if (p.page == 0) std::fprintf(stderr, "[%d/%d] %s\n", p.file, p.files, utf8(QFileInfo(p.path).fileName()).c_str());
        else if (p.stage == QLatin1String("ocr")) std::fprintf(stderr, "  page %d/%d (OCR)\n", p.page, p.pages);
    });
    for (const auto& file : report.files) {
        std::printf("%-9s %s  pages=%d ocr=%d chunks=%d\n", state_name(file.state), utf8(file.path).c_str(), file.pages, file.ocr_pages, file.chunks);
        if (!file.error.isEmpty()) std::fprintf(stderr, "%s: %s\n", file.state == app::FileOutcome::State::Failed ? "error" : "note", utf8(file.error).c_str());
    }
    if (*embedding) {
        auto embedded = app::embed_missing_chunks(store, **embedding, 16, [](int done, int total) {
            std::fprintf(stderr, "\rembedding %d/%d chunks", done, total);
        });
        std::fprintf(stderr, "\n");
        if (!embedded) return fail(embedded.error().message);
    }
    using State = app::FileOutcome::State;
    std::fprintf(stderr, "%d indexed, %d unchanged, %d failed\n", report.count(State::Indexed), report.count(State::Unchanged),
                 report.count(State::Failed));
    return report.count(State::Indexed) + report.count(State::Unchanged) > 0 ? 0 : 1;
}

// What a question finds in the index `--db` names, with `--top` and `--embed`.
struct Found {
    std::unique_ptr<app::RunDatabase> database;
    std::unique_ptr<app::EmbeddingModel> embedding;
    app::Retrieval retrieval;
};

Result<Found> find_passages(const CliArgs& args, const QString& question) {
    Found found;
    auto db = open_database(args);
    if (!db) return db.error();
    found.database = std::move(db.value());
    auto options = retrieval_options(args);
    if (!options) return options.error();
    auto embedding = open_embedding(args);
    if (!embedding) return embedding.error();
    found.embedding = std::move(embedding.value());
    auto retrieval = app::retrieve(DocumentStore(found.database->connection()), found.embedding.get(), question, {}, *options);
    if (!retrieval) return retrieval.error();
    found.retrieval = std::move(retrieval.value());
    return found;
}

int run_search(const CliArgs& args) {
    if (args.positionals().size() != 2) return fail("give one query: mwb docs search --db FILE \"query\"");
    auto found = find_passages(args, qstring(args.positionals()[1]));
    if (!found) return fail(found.error().message);
    for (const app::Passage& p : found->retrieval.passages) {
        if (args.has("json")) {
            const nlohmann::json hit = {{"document", utf8(p.document)}, {"path", utf8(p.path)}, {"page", p.page}, {"score", p.score},
                                        {"char_start", p.char_start}, {"char_end", p.char_end}, {"text", utf8(p.text)}};
            std::printf("%s\n", hit.dump().c_str());
        } else {
            std::printf("%s, page %d (%.4f)\n  %s\n", utf8(p.document).c_str(), p.page, p.score, utf8(p.text.simplified().left(200)).c_str());
        }
    }
    if (!found->retrieval.hybrid)
        std::fprintf(stderr, "%s\n", found->embedding ? "the embedding model has no vectors here yet: BM25 alone" : "BM25 alone (give --embed MODEL_DIR for hybrid retrieval)");
    return 0;
}

int run_ask(const CliArgs& args) {
    if (args.positionals().size() != 3) return fail("give the model folder and one question: mwb docs ask MODEL_DIR --db FILE \"question\"");
    const std::string model_dir = args.positionals()[1];
    const QString question = qstring(args.positionals()[2]);
    auto found = find_passages(args, question);
    if (!found) return fail(found.error().message);
    if (found->retrieval.passages.isEmpty()) return fail("no passage of the indexed documents matches the question");
    const QList<app::CitedSource> sources = app::numbered_sources(found->retrieval.passages);
    const app::ChatMessage prompt = app::grounded_question(question, sources);

    auto graph = load_model_graph(model_dir);
    if (!graph) return fail(graph.error().message);
    auto shared = std::make_shared<const ModelGraph>(std::move(graph.value()));
    auto tokenizer = tok::Tokenizer::load(args.get_or("tokenizer", model_dir));
    if (!tokenizer) return fail(tokenizer.error().message);
    auto ids = chat_prompt_ids(*tokenizer, {{"user", utf8(prompt.content), {}, {}, tok::TemplateJson::object()}});
    if (!ids) return fail(ids.error().message);
    auto sampling = sampling_from(args);
    if (!sampling) return fail(sampling.error().message);
    auto max_new = args.integer_or("max-new", 512);
    if (!max_new || *max_new < 1) return fail("--max-new expects a positive integer");
    GenerationRequest request;
    request.prompt = *ids;
    request.sampling = *sampling;
    request.max_new_tokens = *max_new;
    request.stop_tokens = stop_token_ids(*tokenizer, shared->config);
    auto backend = make_backend(shared, args);
    if (!backend) return fail(backend.error().message);
    if (auto status = (*backend)->reserve_cache(1, int64_t(request.prompt.size()) + *max_new); !status) return fail(status.error().message);
    tok::StreamingDetokenizer detokenizer(*tokenizer, /*skip_special_tokens=*/true);
    auto result = generate_printing(**backend, request, &detokenizer);
    if (!result) return fail(result.error().message);
    std::printf("\nSources:\n");
    for (const app::CitedSource& s : sources) std::printf("[%d] %s, page %d\n", s.number, utf8(s.document).c_str(), s.page);
    print_generation_summary(request, *result);
    return 0;
}

int run_list(const CliArgs& args) {
    auto db = open_database(args);
    if (!db) return fail(db.error().message);
    auto documents = DocumentStore((*db)->connection()).documents();
    if (!documents) return fail(documents.error().message);
    for (const app::DocumentRecord& d : *documents)
        std::printf("%-10s %-20s %s  pages=%d ocr=%d chunks=%d\n", utf8(d.status).c_str(), utf8(d.collection).c_str(), utf8(d.path).c_str(),
                    d.page_count, d.ocr_pages, d.chunk_count);
    std::fprintf(stderr, "OCR languages installed: %s\n", utf8(app::OcrEngine::installed_languages().join(", ")).c_str());
    return 0;
}

}  // namespace

int run_docs(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"json"},
                               {"db", "collection", "ocr-lang", "chunk-tokens", "overlap", "embed", "top", "device", "tokenizer", "max-new",
                                "temperature", "top-p", "top-k", "min-p", "repetition-penalty", "seed"});
    if (!args) return fail(args.error().message);
    // Qt SQL and Qt PDF need an application object; nothing here opens a window.
    int qt_argc = 1;
    char program[] = "mwb";
    char* qt_argv[] = {program, nullptr};
    QCoreApplication application(qt_argc, qt_argv);
    const std::string action = args->positionals().empty() ? "" : args->positionals()[0];
    if (action == "index") return run_index(*args);
    if (action == "search") return run_search(*args);
    if (action == "ask") return run_ask(*args);
    if (action == "list") return run_list(*args);
    return fail(action.empty() ? "give an action: index, search, ask or list" : "unknown docs action '" + action + "': choose index, search, ask or list");
}

}  // namespace mwb::cli
