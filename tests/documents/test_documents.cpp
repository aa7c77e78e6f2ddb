// Document question answering without the GUI: reading PDFs, text and scans (OCR), chunking, the index in the
// history database, retrieval (BM25, vectors, RRF), the grounded prompt and its citations. Documents are made
// here with known sentences on known pages: those sentences are the truth.
#include <QFile>
#include <QTemporaryDir>
#include <QUuid>
#include <QtTest>
#include <nlohmann/json.hpp>

#include "app/documents/chunker.h"
#include "app/documents/document_ingest.h"
#include "app/documents/document_reader.h"
#include "app/documents/embedding_model.h"
#include "app/documents/grounded_prompt.h"
#include "app/documents/ocr_engine.h"
#include "app/documents/page_view.h"
#include "app/documents/retrieval.h"
#include "app/documents/sample_documents.h"
#include "app/services/run_database.h"
#include "engine/model/model_graph.h"
#include "engine/observe/forward_capture.h"
#include "engine/runtime/backend.h"
#include "tests/support/byte_tokenizer.h"

using namespace mwb;
using namespace mwb::app;

namespace {

// One fact per page, and the question it answers.
struct Fact {
    QString sentence;
    QString question;
};
const QList<Fact> kFacts = {
    {"The capital of the kingdom of Varnholt is Leristad, on the river Ombe.", "What is the capital of Varnholt?"},
    {"Copper mining near Dunmarrow ended in 1887 after the great flood.", "When did copper mining near Dunmarrow end?"},
    {"The Selwyn telescope has a primary mirror of 4.2 metres.", "How large is the mirror of the Selwyn telescope?"},
    {"Quillfeather ink is brewed from oak galls and iron salts.", "What is Quillfeather ink made from?"},
    {"The annual Brannoch regatta is rowed over 2400 metres.", "How long is the Brannoch regatta course?"},
    {"Professor Ilse Vantongeren discovered the glacier moss Bryum frigidum.", "Who discovered Bryum frigidum?"},
    {"The Harrowgate bridge carries the railway across the Tessel gorge.", "What does the Harrowgate bridge carry?"},
    {"Saffron from Kozani is harvested in late October by hand.", "When is Kozani saffron harvested?"},
    {"The Orlov lighthouse beam reaches 22 nautical miles.", "How far does the Orlov lighthouse beam reach?"},
    {"Marzipan guild rules of Lubeck require 70 percent almonds.", "How many almonds do the Lubeck marzipan rules require?"},
};

// Lines that every page shares, so that only the fact tells pages apart.
QStringList page_lines(const QString& fact, int page) {
    return {QStringLiteral("Report of the survey, page %1.").arg(page), "The survey office keeps records of the region.",
            fact, "Further notes are kept in the archive of the survey office.", "Readers may ask the archive for copies."};
}

QList<QStringList> fact_pages() {
    QList<QStringList> pages;
    for (qsizetype i = 0; i < kFacts.size(); ++i) pages << page_lines(kFacts[i].sentence, int(i) + 1);
    return pages;
}

const QStringList kScannedLines = {"Scanned memo from the harbour office.", "The lighthouse keeper Halvard Brenn logged forty storms",
                                   "in the winter of 1903 at Skerrymore."};

// A PDF whose document is encrypted with a password that the empty one does not open (made by hand: a page
// tree and a Standard security handler dictionary whose /U matches no password).
QByteArray encrypted_pdf() {
    const QList<QByteArray> objects = {
        "<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        "<< /Filter /Standard /V 1 /R 2 /O <" + QByteArray(64, '1') + "> /U <" + QByteArray(64, '2') + "> /P -4 >>"};
    QByteArray pdf = "%PDF-1.4\n";
    QList<qsizetype> offsets;
    for (qsizetype i = 0; i < objects.size(); ++i) {
        offsets << pdf.size();
        pdf += QByteArray::number(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
    }
    const qsizetype xref = pdf.size();
    pdf += "xref\n0 5\n0000000000 65535 f \n";
    for (qsizetype offset : offsets) pdf += QByteArray::number(offset).rightJustified(10, '0') + " 00000 n \n";
    pdf += "trailer\n<< /Size 5 /Root 1 0 R /Encrypt 4 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\n";
    pdf += "startxref\n" + QByteArray::number(xref) + "\n%%EOF\n";
    return pdf;
}

void write_bytes(const QString& path, const QByteArray& bytes) {
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    QCOMPARE(file.write(bytes), bytes.size());
}

// A sentence-transformers folder around the tiny Qwen2 fixture: mean pooling, Normalize, a "query" prompt,
// and a byte-level tokenizer without merges whose ids are the UTF-8 bytes of the text (within the vocab of 512).
void write_embedding_folder(const QString& folder) {
    const QString fixture = QStringLiteral(MWB_TEST_DATA) + "/models/qwen2-tiny/";
    for (const char* name : {"config.json", "model.safetensors"}) QVERIFY(QFile::copy(fixture + name, folder + "/" + name));
    const nlohmann::json tokenizer = testing::byte_level_tokenizer();
    write_bytes(folder + "/tokenizer.json", QByteArray::fromStdString(tokenizer.dump()));
    const nlohmann::json modules = nlohmann::json::array({
        {{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
        {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}},
        {{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}}});
    write_bytes(folder + "/modules.json", QByteArray::fromStdString(modules.dump()));
    QVERIFY(QDir(folder).mkpath("1_Pooling"));
    write_bytes(folder + "/1_Pooling/config.json",
                R"({"word_embedding_dimension": 96, "pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false,
                    "pooling_mode_max_tokens": false, "pooling_mode_lasttoken": false})");
    write_bytes(folder + "/config_sentence_transformers.json", R"({"prompts": {"query": "query: "}})");
}

// The embedding by hand: the hidden states after the final norm, for the text's bytes as ids, averaged over
// the tokens and scaled to length 1.
std::vector<float> embedding_by_hand(const QString& folder, const QString& text) {
    const QByteArray bytes = text.toUtf8();
    std::vector<int32_t> ids(bytes.begin(), bytes.end());
    for (int32_t& id : ids) id &= 0xff;
    auto graph = load_model_graph(folder.toStdString());
    if (!graph) return {};
    auto shared = std::make_shared<const ModelGraph>(std::move(graph.value()));
    auto backend = make_cpu_backend(shared, 1);
    if (!backend->reserve_cache(1, int64_t(ids.size()))) return {};
    ForwardCapture capture(int64_t(ids.size()));
    ForwardBatch batch;
    batch.tokens = ids;
    batch.chunks = {{0, 0, int64_t(ids.size())}};
    if (!backend->forward(batch, &capture)) return {};
    const std::vector<float>& hidden = capture.hidden().at(shared->config.num_layers);
    const int64_t width = capture.hidden_width();
    std::vector<double> mean(size_t(width), 0.0);
    for (size_t t = 0; t < ids.size(); ++t)
        for (int64_t i = 0; i < width; ++i) mean[size_t(i)] += hidden[t * size_t(width) + size_t(i)] / double(ids.size());
    double norm = 0;
    for (double v : mean) norm += v * v;
    std::vector<float> out;
    for (double v : mean) out.push_back(float(v / std::sqrt(norm)));
    return out;
}

struct Index {
    QTemporaryDir dir;
    std::unique_ptr<RunDatabase> db;
    std::unique_ptr<DocumentStore> store;

    Index() {
        db = std::make_unique<RunDatabase>("docs-test-" + QUuid::createUuid().toString());
        const Status opened = db->open(dir.filePath("history.sqlite"));
        if (!opened) qFatal("%s", opened.error().message.c_str());
        store = std::make_unique<DocumentStore>(db->connection());
    }
    QString path(const QString& name) const { return dir.filePath(name); }
};

const FileOutcome* outcome_for(const IngestReport& report, const QString& name) {
    for (const FileOutcome& f : report.files)
        if (f.path.endsWith('/' + name) || f.path == name) return &f;
    return nullptr;
}

}  // namespace

class DocumentsTest : public QObject {
    Q_OBJECT

private slots:
    void chunks_keep_their_character_ranges() {
        // Words: one(0-3) two(4-7) three(9-14) four(15-19) five(21-25) six(26-29) seven(30-35)
        const QString text = "one two, three four. five six seven";
        const QList<TextChunk> chunks = chunk_page(4, text, {3, 1});
        QCOMPARE(chunks.size(), 3);
        QCOMPARE(chunks[0].text, QString("one two, three"));
        QCOMPARE(chunks[0].char_start, 0);
        QCOMPARE(chunks[0].char_end, 14);
        QCOMPARE(chunks[1].text, QString("three four. five"));
        QCOMPARE(chunks[1].char_start, 9);
        QCOMPARE(chunks[2].text, QString("five six seven"));
        QCOMPARE(chunks[2].char_end, 35);
        for (const TextChunk& c : chunks) {
            QCOMPARE(c.page, 4);
            QCOMPARE(text.mid(c.char_start, c.char_end - c.char_start), c.text);
        }
        QVERIFY(chunk_page(1, "  ... !!  ", {}).isEmpty());
        QCOMPARE(chunk_page(1, "lonely.) next", {1, 0}).first().text, QString("lonely.)"));
    }

    void questions_become_safe_fts_queries() {
        QCOMPARE(fts_query_for("What is the capital of Varnholt?"), QString("\"capital\" OR \"varnholt\""));
        // FTS5 syntax in a question is only words here: no column filter, no NEAR, no unbalanced quote.
        QCOMPARE(fts_query_for("text: NEAR(\"a\" b"), QString("\"text\" OR \"near\" OR \"b\""));
        QCOMPARE(fts_query_for("what is it?"), QString("\"what\" OR \"is\" OR \"it\""));  // only stop words: keep them
        QCOMPARE(fts_query_for("?!"), QString());
    }

    void reciprocal_rank_fusion_by_hand() {
        auto passage = [](qint64 id) { Passage p; p.chunk_id = id; return p; };
        const QList<Passage> bm25 = {passage(1), passage(2), passage(3)};
        const QList<Passage> dense = {passage(3), passage(1)};
        const QList<Passage> fused = reciprocal_rank_fusion({bm25, dense}, 10);
        // 1: 1/61 + 1/62 = 0.0325217; 3: 1/63 + 1/61 = 0.0322664; 2: 1/62 = 0.0161290
        QCOMPARE(fused.size(), 3);
        QCOMPARE(fused[0].chunk_id, 1);
        QCOMPARE(fused[1].chunk_id, 3);
        QCOMPARE(fused[2].chunk_id, 2);
        QVERIFY(qAbs(fused[0].score - (1.0 / 61 + 1.0 / 62)) < 1e-12);
        QVERIFY(qAbs(fused[1].score - (1.0 / 63 + 1.0 / 61)) < 1e-12);
        QVERIFY(qAbs(fused[2].score - 1.0 / 62) < 1e-12);
        QCOMPARE(reciprocal_rank_fusion({bm25, dense}, 1).size(), 1);
    }

    void citations_are_read_from_answers() {
        QCOMPARE(cited_numbers("Leristad [2]. Also [1][3], see [2, 4-5] and [9] or [x].", 5), (QList<int>{2, 1, 3, 4, 5}));
        QCOMPARE(cited_numbers("no sources", 3), QList<int>());
        QCOMPARE(cited_numbers("[1-1000000000]", 2), (QList<int>{1, 2}));
        // Marks point at the written numbers: "See [2] and [1, 3]." has 2 at 5, 1 at 13, 3 at 16.
        const QList<CitationMark> marks = citation_marks("See [2] and [1, 3] or [7].", 3);
        QCOMPARE(marks.size(), 3);
        QCOMPARE(marks[0].start, 5);
        QCOMPARE(marks[0].number, 2);
        QCOMPARE(marks[1].start, 13);
        QCOMPARE(marks[2].start, 16);
        QCOMPARE(marks[2].length, 1);
    }

    void text_pdf_pages_answer_their_questions() {
        Index index;
        const QString pdf = index.path("survey.pdf");
        QVERIFY(write_text_pdf(pdf, fact_pages()));
        const IngestReport report = ingest_documents(*index.store, {pdf}, {});
        QCOMPARE(report.count(FileOutcome::State::Indexed), 1);
        QCOMPARE(report.files[0].pages, kFacts.size());
        QCOMPARE(report.files[0].ocr_pages, 0);
        for (qsizetype i = 0; i < kFacts.size(); ++i) {
            const int page = int(i) + 1;
            auto found = retrieve(*index.store, nullptr, kFacts[i].question, {}, {3, 50});
            QVERIFY2(found, found ? "" : found.error().message.c_str());
            QVERIFY(!found->hybrid);
            QStringList pages;
            bool hit = false;
            for (const Passage& p : found->passages) {
                pages << QString::number(p.page);
                hit = hit || p.page == page;
            }
            QVERIFY2(hit, qPrintable(kFacts[i].question + " expected page " + QString::number(page) + ", got " + pages.join(',')));
            // The source of a citation is the right stretch of the stored page.
            const QList<CitedSource> sources = numbered_sources(found->passages);
            for (const CitedSource& s : sources) {
                auto stored = index.store->page(s.document_id, s.page);
                QVERIFY(stored);
                QCOMPARE(stored->text.mid(s.char_start, s.char_end - s.char_start), s.text);
            }
        }
    }

    void scanned_pages_are_read_by_ocr() {
        if (OcrEngine::installed_languages().isEmpty()) QFAIL("Tesseract has no language data: install tesseract-ocr-eng");
        Index index;
        const QString pdf = index.path("scan.pdf");
        QVERIFY(write_scanned_pdf(pdf, {kScannedLines, {"Second scanned page about the ferry to Skerrymore."}}, 200));
        auto reader = DocumentReader::open(pdf);
        QVERIFY(reader);
        auto bare = (*reader)->read_page(1, nullptr);
        QVERIFY(bare);
        QCOMPARE(bare->source, PageSource::Ocr);  // no text layer
        QVERIFY(bare->text.isEmpty());

        const IngestReport report = ingest_documents(*index.store, {pdf}, {});
        QCOMPARE(report.count(FileOutcome::State::Indexed), 1);
        QCOMPARE(report.files[0].ocr_pages, 2);
        auto documents = index.store->documents();
        QVERIFY(documents && documents->size() == 1);
        auto page = index.store->page(documents->first().id, 1);
        QVERIFY(page);
        QCOMPARE(page->source, PageSource::Ocr);
        for (const char* word : {"lighthouse", "Halvard", "Brenn", "forty", "storms", "1903", "Skerrymore"})
            QVERIFY2(page->text.contains(word), qPrintable(QString("'%1' not in the OCR text: %2").arg(word, page->text)));
        // The box of "Halvard" lies on the second line: its baseline is 90 points down an 842-point page.
        const qsizetype at = page->text.indexOf("Halvard");
        const WordBox* box = nullptr;
        for (const WordBox& w : page->words)
            if (w.char_start == at) box = &w;
        QVERIFY(box);
        QVERIFY2(box->box.top() > 70.0 / 842 && box->box.bottom() < 95.0 / 842,
                 qPrintable(QString("box %1..%2").arg(box->box.top()).arg(box->box.bottom())));
        QVERIFY(box->box.left() > 0.05 && box->box.right() < 0.6);

        auto found = retrieve(*index.store, nullptr, "How many storms did Halvard Brenn log?", {}, {3, 50});
        QVERIFY(found && !found->passages.isEmpty());
        QCOMPARE(found->passages.first().page, 1);
    }

    void cited_text_is_highlighted_where_it_was_drawn() {
        Index index;
        const QString pdf = index.path("survey.pdf"), scan = index.path("scan.pdf"), notes = index.path("notes.txt");
        QVERIFY(write_text_pdf(pdf, fact_pages().mid(0, 2)));
        QVERIFY(write_scanned_pdf(scan, {kScannedLines}, 200));
        write_bytes(notes, "Plain notes.");
        QCOMPARE(ingest_documents(*index.store, {pdf, scan, notes}, {}).count(FileOutcome::State::Indexed), 3);
        auto documents = index.store->documents();
        QVERIFY(documents && documents->size() == 3);
        for (const DocumentRecord& d : *documents) {
            // The third line of each survey page is the fact; on the scan, the second line names Halvard Brenn.
            const QString cited = d.kind == "text" ? "notes" : d.name == "scan.pdf" ? "Halvard Brenn" : kFacts[1].sentence;
            const int page = d.name == "survey.pdf" ? 2 : 1;
            auto text = index.store->page(d.id, page);
            QVERIFY(text);
            const int start = int(text->text.indexOf(cited));
            QVERIFY2(start >= 0, qPrintable(text->text));
            auto view = load_page_view(*index.store, d.id, d.path, page, start, start + int(cited.size()), 72);
            QVERIFY2(view, view ? "" : view.error().message.c_str());
            if (d.kind == "text") {
                QVERIFY(view->image.isNull());
                QVERIFY(view->highlight.isEmpty());
                continue;
            }
            QCOMPARE(view->image.size(), QSize(595, 842));  // A4 at 72 DPI
            QVERIFY(!view->highlight.isEmpty());
            QRectF bounds;
            for (const QPolygonF& p : view->highlight) bounds |= p.boundingRect();
            // Lines are drawn from 56 points left, with baselines at 72 + 18·i points down an A4 page (842).
            const double line = d.name == "scan.pdf" ? 1 : 2;
            const double baseline = (72 + 18 * line) / 842;
            QVERIFY2(bounds.top() > baseline - 16.0 / 842 && bounds.bottom() < baseline + 6.0 / 842,
                     qPrintable(QString("%1: %2..%3, baseline %4").arg(d.name).arg(bounds.top()).arg(bounds.bottom()).arg(baseline)));
            QVERIFY(bounds.left() > 50.0 / 595 && bounds.left() < 62.0 / 595 + (d.name == "scan.pdf" ? 0.3 : 0));
        }
    }

    void bad_files_fail_alone() {
        Index index;
        const QString good = index.path("good.pdf");
        QVERIFY(write_text_pdf(good, fact_pages().mid(0, 2)));
        QFile good_file(good);
        QVERIFY(good_file.open(QIODevice::ReadOnly));
        const QByteArray good_bytes = good_file.readAll();
        write_bytes(index.path("encrypted.pdf"), encrypted_pdf());
        write_bytes(index.path("truncated.pdf"), good_bytes.left(good_bytes.size() * 4 / 10));
        write_bytes(index.path("empty.pdf"), {});
        write_bytes(index.path("letter.pdf"), "Dear reader, this is plain text with a .pdf name.\n");
        write_bytes(index.path("broken.png"), QByteArray("\x89PNG\r\n\x1a\n", 8) + QByteArray(40, 'x'));
        write_bytes(index.path("notes.txt"), "Notes on the Selwyn telescope.\n");

        const IngestReport report = ingest_documents(*index.store, {index.dir.path(), index.path("missing.pdf")}, {});
        auto expect_failure = [&](const QString& name, const QString& words) {
            const FileOutcome* f = outcome_for(report, name);
            QVERIFY2(f, qPrintable(name));
            QCOMPARE(f->state, FileOutcome::State::Failed);
            QVERIFY2(f->error.contains(name) && f->error.contains(words), qPrintable(f->error));
        };
        expect_failure("encrypted.pdf", "encrypted");
        expect_failure("truncated.pdf", "damaged or truncated");
        expect_failure("empty.pdf", "empty");
        expect_failure("letter.pdf", "not a PDF");
        expect_failure("broken.png", "image");
        expect_failure("missing.pdf", "does not exist");
        QCOMPARE(outcome_for(report, "good.pdf")->state, FileOutcome::State::Indexed);
        QCOMPARE(outcome_for(report, "notes.txt")->state, FileOutcome::State::Indexed);
        QCOMPARE(report.count(FileOutcome::State::Indexed), 2);
        auto documents = index.store->documents();
        QVERIFY(documents);
        QCOMPARE(documents->size(), 2);  // nothing half-stored of the bad ones
    }

    void reindexing_unchanged_files_does_nothing() {
        Index index;
        const QString notes = index.path("notes.txt");
        write_bytes(notes, "The ferry to Skerrymore leaves at dawn.\fThe second page names the captain, Odile Marsh.");
        QCOMPARE(ingest_documents(*index.store, {notes}, {}).count(FileOutcome::State::Indexed), 1);
        auto before = index.store->documents();
        QVERIFY(before && before->size() == 1);
        QCOMPARE(before->first().page_count, 2);
        const IngestReport again = ingest_documents(*index.store, {notes}, {});
        QCOMPARE(again.count(FileOutcome::State::Unchanged), 1);
        auto after = index.store->documents();
        QVERIFY(after && after->size() == 1);
        QCOMPARE(after->first().id, before->first().id);

        // A changed file is indexed again: the new text is found, the old is gone (also from FTS5).
        write_bytes(notes, "The ferry to Skerrymore was replaced by a bridge.");
        QCOMPARE(ingest_documents(*index.store, {notes}, {}).count(FileOutcome::State::Indexed), 1);
        auto bridge = retrieve(*index.store, nullptr, "bridge", {});
        QVERIFY(bridge && bridge->passages.size() == 1);
        auto captain = retrieve(*index.store, nullptr, "captain Odile", {});
        QVERIFY(captain && captain->passages.isEmpty());
    }

    void an_interrupted_document_is_indexed_again() {
        Index index;
        const QString notes = index.path("notes.txt");
        write_bytes(notes, "Kozani saffron notes.");
        // As a killed process leaves it: begun, one page stored, never finished.
        DocumentRecord record;
        record.path = notes;
        record.name = "notes.txt";
        record.collection = "c";
        record.kind = "text";
        record.sha256 = "whatever";
        auto id = index.store->begin_document(record);
        QVERIFY(id);
        PageText page;
        page.number = 1;
        page.text = "Kozani saffron notes.";
        QVERIFY(index.store->add_page(*id, page, chunk_page(1, page.text)));
        auto hidden = retrieve(*index.store, nullptr, "saffron", {});
        QVERIFY(hidden && hidden->passages.isEmpty());  // not searchable while "indexing"
        QCOMPARE(ingest_documents(*index.store, {notes}, {}).count(FileOutcome::State::Indexed), 1);
        auto found = retrieve(*index.store, nullptr, "saffron", {});
        QVERIFY(found && found->passages.size() == 1);
    }

    void scope_limits_the_search() {
        Index index;
        write_bytes(index.path("a.txt"), "Orlov lighthouse beam notes.");
        write_bytes(index.path("b.txt"), "Orlov lighthouse keeper notes.");
        IngestOptions alpha;
        alpha.collection = "alpha";
        IngestOptions beta;
        beta.collection = "beta";
        ingest_documents(*index.store, {index.path("a.txt")}, alpha);
        ingest_documents(*index.store, {index.path("b.txt")}, beta);
        QCOMPARE(retrieve(*index.store, nullptr, "Orlov", {})->passages.size(), 2);
        DocumentScope only_beta;
        only_beta.collections = {"beta"};
        auto in_beta = retrieve(*index.store, nullptr, "Orlov", only_beta);
        QVERIFY(in_beta && in_beta->passages.size() == 1);
        QCOMPARE(in_beta->passages[0].document, QString("b.txt"));
        QCOMPARE(index.store->collections().value(), (QStringList{"alpha", "beta"}));
    }

    void answers_keep_their_sources_in_the_history() {
        Index index;
        write_bytes(index.path("a.txt"), "Quillfeather ink is brewed from oak galls.");
        ingest_documents(*index.store, {index.path("a.txt")}, {});
        auto found = retrieve(*index.store, nullptr, "Quillfeather ink", {});
        QVERIFY(found && found->passages.size() == 1);
        const QList<CitedSource> sources = numbered_sources(found->passages);
        const ChatMessage prompt = grounded_question("What is Quillfeather ink made from?", sources);
        QVERIFY(prompt.content.contains("[1] a.txt, page 1:\nQuillfeather ink is brewed from oak galls."));
        QVERIFY(prompt.content.endsWith("Question: What is Quillfeather ink made from?"));

        auto run = index.db->create_run("docs", "ink", "model", "{}");
        QVERIFY(run);
        MessageRecord answer;
        answer.run_id = *run;
        answer.role = "assistant";
        answer.content = "Oak galls [1].";
        answer.sources = sources;
        QVERIFY(index.db->add_message(answer));
        // The document leaves the index; the answer keeps its source.
        QVERIFY(index.store->remove_document(sources[0].document_id));
        auto messages = index.db->messages(*run);
        QVERIFY(messages && messages->size() == 1);
        const QList<CitedSource>& kept = messages->first().sources;
        QCOMPARE(kept.size(), 1);
        QCOMPARE(kept[0].number, 1);
        QCOMPARE(kept[0].document_id, 0);
        QCOMPARE(kept[0].document, QString("a.txt"));
        QCOMPARE(kept[0].text, QString("Quillfeather ink is brewed from oak galls."));
        QCOMPARE(index.store->chunk_count({}).value(), 0);
    }

    void embedding_vectors_and_hybrid_retrieval() {
        Index index;
        const QString folder = index.path("embedder");
        QVERIFY(QDir().mkpath(folder));
        write_embedding_folder(folder);
        auto model = EmbeddingModel::open(folder);
        QVERIFY2(model, model ? "" : model.error().message.c_str());
        QCOMPARE((*model)->dimension(), 96);
        write_bytes(index.path("a.txt"), "Saffron from Kozani.\fCopper near Dunmarrow.");
        write_bytes(index.path("b.txt"), "The Orlov lighthouse.");
        QCOMPARE(ingest_documents(*index.store, {index.path("a.txt"), index.path("b.txt")}, {}).count(FileOutcome::State::Indexed), 2);
        auto embedded = embed_missing_chunks(*index.store, **model, 2);
        QVERIFY(embedded);
        QCOMPARE(*embedded, 3);
        QCOMPARE(embed_missing_chunks(*index.store, **model, 2).value(), 0);  // nothing left to do

        // Each stored vector is the chunk's embedding computed by hand.
        int checked = 0;
        QVERIFY(index.store->for_each_vector((*model)->key(), {}, [&](qint64 chunk_id, std::span<const float> vector) {
            const QString text = index.store->passages({chunk_id}).value().first().text;
            const std::vector<float> expected = embedding_by_hand(folder, text);
            QCOMPARE(vector.size(), expected.size());
            for (size_t i = 0; i < expected.size(); ++i) QVERIFY2(std::abs(vector[i] - expected[i]) < 1e-5, qPrintable(text));
            ++checked;
        }));
        QCOMPARE(checked, 3);

        // A question that is a chunk's exact text is most similar to it (its query prompt aside), and both
        // rankings are fused.
        auto found = retrieve(*index.store, model->get(), "Copper near Dunmarrow.", {}, {3, 50});
        QVERIFY(found);
        QVERIFY(found->hybrid);
        QCOMPARE(found->passages.first().text, QString("Copper near Dunmarrow."));
        QCOMPARE(found->passages.first().page, 2);
        QVERIFY(std::abs(found->passages.first().score - 2.0 / 61) < 1e-12);  // first in both rankings

        QVERIFY(!EmbeddingModel::open(QStringLiteral(MWB_TEST_DATA) + "/models/qwen2-tiny"));  // no modules.json
    }
};

QTEST_MAIN(DocumentsTest)
#include "test_documents.moc"
