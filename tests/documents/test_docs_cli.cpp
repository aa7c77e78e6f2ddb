// `mwb docs` and `mwb bench-docs` as a user runs them: a folder of documents indexed into a database file,
// searched with JSON output, asked through a tiny chat model; the facts written into the PDF are the truth.
#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include "app/documents/sample_documents.h"
#include "engine/io/safetensors.h"
#include "engine/model/config.h"
#include "engine/model/random_weights.h"
#include "tests/support/cli_process.h"

using namespace mwb;

namespace {

using testing::run_mwb;
using Run = testing::CliRun;

void write_bytes(const QString& path, const QByteArray& bytes) {
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    QCOMPARE(file.write(bytes), bytes.size());
}

QList<QStringList> survey_pages() {
    return {{"Survey report, first page.", "The capital of the kingdom of Varnholt is Leristad."},
            {"Survey report, second page.", "Copper mining near Dunmarrow ended in 1887."},
            {"Survey report, third page.", "The Orlov lighthouse beam reaches 22 nautical miles."}};
}

}  // namespace

class DocsCliTest : public QObject {
    Q_OBJECT

private slots:
    void index_search_and_reindex_a_folder() {
        QTemporaryDir dir;
        const QString folder = dir.filePath("library");
        QVERIFY(QDir().mkpath(folder));
        QVERIFY(app::write_text_pdf(folder + "/survey.pdf", survey_pages()));
        write_bytes(folder + "/broken.pdf", "not a pdf at all");
        write_bytes(folder + "/notes.md", "# Notes\n\nSaffron from Kozani is harvested in late October.\n");
        write_bytes(folder + "/picture.svg", "<svg/>");  // not a document: left out of the folder scan
        const QString db = dir.filePath("index.sqlite");

        const Run indexed = run_mwb({"docs", "index", "--db", db, folder});
        QCOMPARE(indexed.exit_code, 0);
        QVERIFY2(indexed.out.contains(QRegularExpression("indexed +\\S+/survey.pdf  pages=3 ocr=0 chunks=3")), qPrintable(indexed.out));
        QVERIFY2(indexed.out.contains(QRegularExpression("failed +\\S+/broken.pdf")), qPrintable(indexed.out));
        QVERIFY2(indexed.err.contains("broken.pdf: the file is named .pdf but is not a PDF"), qPrintable(indexed.err));
        QVERIFY(!indexed.out.contains("picture.svg"));
        QVERIFY(indexed.err.contains("2 indexed, 0 unchanged, 1 failed"));

        const Run again = run_mwb({"docs", "index", "--db", db, folder});
        QCOMPARE(again.exit_code, 0);
        QVERIFY2(again.err.contains("0 indexed, 2 unchanged, 1 failed"), qPrintable(again.err));

        const Run search = run_mwb({"docs", "search", "--db", db, "Where did copper mining end?", "--top", "2", "--json"});
        QCOMPARE(search.exit_code, 0);
        const QStringList lines = search.out.split('\n', Qt::SkipEmptyParts);
        QVERIFY(!lines.isEmpty() && lines.size() <= 2);
        const auto first = nlohmann::json::parse(lines[0].toStdString());
        QCOMPARE(QString::fromStdString(first["document"]), QString("survey.pdf"));
        QCOMPARE(int(first["page"]), 2);
        QVERIFY(QString::fromStdString(first["text"]).contains("Dunmarrow ended in 1887"));
        QVERIFY(first["score"].is_number());
        QVERIFY(search.err.contains("BM25 alone"));

        const Run list = run_mwb({"docs", "list", "--db", db});
        QCOMPARE(list.exit_code, 0);
        QVERIFY(list.out.contains("ready") && list.out.contains("notes.md"));
    }

    void only_bad_files_fail_the_command() {
        QTemporaryDir dir;
        write_bytes(dir.filePath("empty.pdf"), {});
        const Run run = run_mwb({"docs", "index", "--db", dir.filePath("index.sqlite"), dir.filePath("empty.pdf"), dir.filePath("gone.txt")});
        QCOMPARE(run.exit_code, 1);
        QVERIFY2(run.err.contains("empty.pdf: the file is empty") && run.err.contains("gone.txt: the file does not exist"), qPrintable(run.err));
        QCOMPARE(run_mwb({"docs", "search", "--db", dir.filePath("index.sqlite"), "q", "--bogus"}).exit_code, 1);
        QVERIFY(run_mwb({"docs", "index"}).err.contains("--db FILE"));
        QVERIFY(run_mwb({"docs", "shred", "--db", "x"}).err.contains("unknown docs action 'shred'"));
    }

    void ask_answers_with_numbered_sources() {
        // A tiny random-weight DeepSeek-V3 with the real DeepSeek-V3 tokenizer: the answer is noise, the
        // sources and the prompt around them are what is checked.
        QTemporaryDir dir;
        const QString model = dir.filePath("model");
        QVERIFY(QDir().mkpath(model));
        for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
            QVERIFY(QFile::copy(QStringLiteral(MWB_TEST_DATA "/tokenizer/deepseek-v3/") + file, model + "/" + file));
        QFile source(QStringLiteral(MWB_TEST_DATA "/models/dsv3-tiny/config.json"));
        QVERIFY(source.open(QIODevice::ReadOnly));
        auto config_json = nlohmann::json::parse(source.readAll().toStdString());
        config_json["vocab_size"] = 129280;
        write_bytes(model + "/config.json", QByteArray::fromStdString(config_json.dump()));
        auto config = parse_model_config(config_json.dump());
        QVERIFY(config.ok());
        QVERIFY(write_safetensors((model + "/model.safetensors").toStdString(), random_weights(*config, 5)).ok());

        QVERIFY(app::write_text_pdf(dir.filePath("survey.pdf"), survey_pages()));
        const QString db = dir.filePath("index.sqlite");
        QCOMPARE(run_mwb({"docs", "index", "--db", db, dir.filePath("survey.pdf")}).exit_code, 0);
        const Run ask = run_mwb({"docs", "ask", model, "--db", db, "How far does the Orlov lighthouse beam reach?", "--top", "2",
                                 "--max-new", "4"});
        QCOMPARE(ask.exit_code, 0);
        const qsizetype sources = ask.out.indexOf("\nSources:\n");
        QVERIFY2(sources >= 0, qPrintable(ask.out));
        QVERIFY2(ask.out.mid(sources).startsWith("\nSources:\n[1] survey.pdf, page 3\n"), qPrintable(ask.out));
        QVERIFY2(ask.err.contains("generated=4"), qPrintable(ask.err));
    }

    void benchmark_reports_its_figures() {
        const Run run = run_mwb({"bench-docs", "--pages", "4", "--ocr-pages", "1", "--chunks", "50", "--queries", "5"});
        QCOMPARE(run.exit_code, 0);
        for (const char* line : {"text PDF:    4 pages", "scanned PDF: 1 pages", "query index: 50 chunks", "BM25 query:  p50"})
            QVERIFY2(run.out.contains(line), qPrintable(run.out));
    }
};

QTEST_MAIN(DocsCliTest)
#include "test_docs_cli.moc"
