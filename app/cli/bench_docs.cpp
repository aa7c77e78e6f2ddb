// mwb bench-docs: how fast documents are indexed (pages/s of text PDFs, and of scanned pages through OCR) and
// how fast a question finds its passages among many chunks (latency p50/p99). Documents are made on the spot.
#include <QElapsedTimer>
#include <QGuiApplication>
#include <QTemporaryDir>
#include <QUuid>
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <random>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "app/documents/document_ingest.h"
#include "app/documents/retrieval.h"
#include "app/documents/sample_documents.h"
#include "app/services/run_database.h"

namespace mwb::cli {

namespace {

// Sentences of random words from a fixed vocabulary: text with the statistics of prose as BM25 sees it.
class WordSource {
public:
    explicit WordSource(unsigned seed) : random_(seed) {
        for (int i = 0; i < 4000; ++i) {
            QString word;
            const int length = 3 + int(random_() % 7);
            for (int c = 0; c < length; ++c) word += QChar('a' + int(random_() % 26));
            vocabulary_ << word;
        }
    }
    // Words drawn with a Zipf-like skew, as in natural text.
    QString word() {
        const double u = std::uniform_real_distribution<double>(0, 1)(random_);
        return vocabulary_[int(std::pow(u, 3.0) * double(vocabulary_.size() - 1))];
    }
    QString line(int words) {
        QStringList out;
        for (int i = 0; i < words; ++i) out << word();
        return out.join(' ');
    }

private:
    std::mt19937 random_;
    QStringList vocabulary_;
};

QList<QStringList> make_pages(WordSource& words, int pages, int lines) {
    QList<QStringList> out;
    for (int p = 0; p < pages; ++p) {
        QStringList page;
        for (int l = 0; l < lines; ++l) page << words.line(9);
        out << page;
    }
    return out;
}

double percentile(std::vector<double> values, double q) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    return values[size_t(std::min<double>(double(values.size() - 1), q * double(values.size())))];
}

// Pages per second of indexing `pdf` into a fresh database.
Result<double> index_rate(const QString& pdf, const QString& database_path, int pages) {
    app::RunDatabase db(QStringLiteral("mwb-bench-docs-") + QUuid::createUuid().toString(QUuid::WithoutBraces));
    MWB_TRY(db.open(database_path));
    app::DocumentStore store(db.connection());
    QElapsedTimer timer;
    timer.start();
    const auto report = app::ingest_documents(store, {pdf}, {});
    const double seconds = double(timer.nsecsElapsed()) / 1e9;
    if (report.count(app::FileOutcome::State::Indexed) != 1)
        return make_error("indexing " + pdf.toStdString() + " failed: " + (report.files.isEmpty() ? std::string() : report.files[0].error.toStdString()));
    return pages / seconds;
}

}  // namespace

int run_bench_docs(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {}, {"pages", "ocr-pages", "chunks", "queries", "seed"});
    if (!args) return fail(args.error().message);
    auto pages = args->integer_or("pages", 200);
    auto ocr_pages = args->integer_or("ocr-pages", 8);
    auto chunks = args->integer_or("chunks", 10000);
    auto queries = args->integer_or("queries", 200);
    auto seed = args->integer_or("seed", 1);
    for (const Error* e : {pages ? nullptr : &pages.error(), ocr_pages ? nullptr : &ocr_pages.error(), chunks ? nullptr : &chunks.error(),
                           queries ? nullptr : &queries.error(), seed ? nullptr : &seed.error()})
        if (e) return fail(e->message);
    if (*pages < 1 || *ocr_pages < 1 || *chunks < 1 || *queries < 1) return fail("--pages, --ocr-pages, --chunks and --queries must be at least 1");

    // Drawing text for the PDFs needs fonts, hence a GUI application, without a window.
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    int qt_argc = 1;
    char program[] = "mwb";
    char* qt_argv[] = {program, nullptr};
    QGuiApplication application(qt_argc, qt_argv);
    QTemporaryDir scratch;
    if (!scratch.isValid()) return fail("cannot make a scratch folder: " + scratch.errorString().toStdString());
    WordSource words(static_cast<unsigned>(*seed));

    const QString text_pdf = scratch.filePath("text.pdf"), scanned_pdf = scratch.filePath("scanned.pdf");
    if (auto s = app::write_text_pdf(text_pdf, make_pages(words, int(*pages), 40)); !s) return fail(s.error().message);
    if (auto s = app::write_scanned_pdf(scanned_pdf, make_pages(words, int(*ocr_pages), 40), 300); !s) return fail(s.error().message);
    auto text_rate = index_rate(text_pdf, scratch.filePath("text.sqlite"), int(*pages));
    if (!text_rate) return fail(text_rate.error().message);
    auto ocr_rate = index_rate(scanned_pdf, scratch.filePath("ocr.sqlite"), int(*ocr_pages));
    if (!ocr_rate) return fail(ocr_rate.error().message);

    // The query index: chunks stored straight from generated text, 128 words each as the chunker makes them.
    app::RunDatabase db(QStringLiteral("mwb-bench-docs-query"));
    if (auto s = db.open(scratch.filePath("query.sqlite")); !s) return fail(s.error().message);
    app::DocumentStore store(db.connection());
    app::DocumentRecord record;
    record.path = scratch.filePath("generated.txt");
    record.name = "generated.txt";
    record.collection = "bench";
    record.kind = "text";
    record.sha256 = "-";
    auto document = store.begin_document(record);
    if (!document) return fail(document.error().message);
    QElapsedTimer timer;
    timer.start();
    constexpr int kChunksPerPage = 10;
    const int page_count = int((*chunks + kChunksPerPage - 1) / kChunksPerPage);
    for (int page = 1; page <= page_count; ++page) {
        app::PageText text;
        text.number = page;
        QList<app::TextChunk> page_chunks;
        for (int c = 0; c < kChunksPerPage && (page - 1) * kChunksPerPage + c < *chunks; ++c) {
            const QString chunk_text = words.line(128);
            page_chunks << app::TextChunk{page, int(text.text.size()), int(text.text.size() + chunk_text.size()), chunk_text};
            text.text += chunk_text + "\n";
        }
        if (auto added = store.add_page(*document, text, page_chunks); !added) return fail(added.error().message);
    }
    if (auto s = store.finish_document(*document, page_count, 0); !s) return fail(s.error().message);
    const double store_seconds = double(timer.nsecsElapsed()) / 1e9;

    std::vector<double> latencies_ms;
    int answered = 0;
    for (int q = 0; q < *queries; ++q) {
        const QString question = "what about " + words.line(6) + "?";
        timer.restart();
        auto found = app::retrieve(store, nullptr, question, {});
        latencies_ms.push_back(double(timer.nsecsElapsed()) / 1e6);
        if (!found) return fail(found.error().message);
        answered += !found->passages.isEmpty();
    }
    std::printf("text PDF:    %lld pages, %.1f pages/s (read, chunk, store)\n", *pages, *text_rate);
    std::printf("scanned PDF: %lld pages, %.2f pages/s (render at 300 DPI, OCR, chunk, store)\n", *ocr_pages, *ocr_rate);
    std::printf("query index: %lld chunks stored in %.2f s\n", *chunks, store_seconds);
    std::printf("BM25 query:  p50 %.2f ms, p99 %.2f ms over %lld questions (%d with passages)\n", percentile(latencies_ms, 0.5),
                percentile(latencies_ms, 0.99), *queries, answered);
    return 0;
}

}  // namespace mwb::cli
