#include "ui/documents/documents_page.h"

#include <QDragEnterEvent>
#include <QDropEvent>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QMimeData>
#include <QPushButton>
#include <QScrollBar>
#include <QSplitter>
#include <QTextBrowser>
#include <QUrl>
#include <QVBoxLayout>

#include "app/documents/grounded_prompt.h"
#include "app/services/chat_text.h"
#include "ui/documents/library_panel.h"
#include "ui/documents/page_viewer.h"

namespace mwb::ui {

namespace {

// Answer text as HTML with every cited source number a link "source:ANSWER:NUMBER".
QString linked_answer(const QString& answer, int answer_index, int source_count) {
    QString html;
    int at = 0;
    for (const app::CitationMark& mark : app::citation_marks(answer, source_count)) {
        html += answer.mid(at, mark.start - at).toHtmlEscaped();
        html += QStringLiteral("<a href='source:%1:%2'>%2</a>").arg(answer_index).arg(mark.number);
        at = mark.start + mark.length;
    }
    html += answer.mid(at).toHtmlEscaped();
    return html.replace('\n', QLatin1String("<br>"));
}

}  // namespace

DocumentsPage::DocumentsPage(AppContext& context, app::DocumentLibrary& library, QWidget* parent)
    : QWidget(parent), context_(context), library_(library) {
    setAcceptDrops(true);
    auto* layout = new QHBoxLayout(this);
    auto* splitter = new QSplitter;
    layout->addWidget(splitter);

    library_panel_ = new LibraryPanel(library_);
    library_panel_->setMinimumWidth(340);
    splitter->addWidget(library_panel_);

    auto* middle = new QWidget;
    auto* middle_layout = new QVBoxLayout(middle);
    middle_layout->setContentsMargins(0, 0, 0, 0);
    scope_label_ = new QLabel;
    scope_label_->setObjectName("scopeLabel");
    middle_layout->addWidget(scope_label_);
    answers_ = new QTextBrowser;
    answers_->setObjectName("answerView");
    answers_->setOpenLinks(false);
    answers_->setPlaceholderText(tr("Add documents on the left, then ask a question about them below. Answers cite their sources "
                                    "as [1], [2]; click one to see the page."));
    middle_layout->addWidget(answers_, 1);
    auto* ask_row = new QHBoxLayout;
    question_ = new QLineEdit;
    question_->setObjectName("question");
    question_->setPlaceholderText(tr("Ask about your documents…"));
    ask_button_ = new QPushButton(tr("Ask"));
    ask_button_->setObjectName("askButton");
    stop_button_ = new QPushButton(tr("Stop"));
    stop_button_->setEnabled(false);
    auto* new_button = new QPushButton(tr("New"));
    new_button->setToolTip(tr("Start a new session (the answers so far stay in Runs)"));
    ask_row->addWidget(question_, 1);
    ask_row->addWidget(ask_button_);
    ask_row->addWidget(stop_button_);
    ask_row->addWidget(new_button);
    middle_layout->addLayout(ask_row);
    splitter->addWidget(middle);

    viewer_ = new PageViewer;
    splitter->addWidget(viewer_);
    splitter->setStretchFactor(0, 2);
    splitter->setStretchFactor(1, 3);
    splitter->setStretchFactor(2, 3);

    connect(ask_button_, &QPushButton::clicked, this, [this] { ask(question_->text()); });
    connect(question_, &QLineEdit::returnPressed, this, [this] { ask(question_->text()); });
    connect(stop_button_, &QPushButton::clicked, this, &DocumentsPage::stop);
    connect(new_button, &QPushButton::clicked, this, &DocumentsPage::new_session);
    connect(answers_, &QTextBrowser::anchorClicked, this, [this](const QUrl& url) {
        const QStringList parts = url.toString().split(':');
        if (parts.size() == 3 && parts[0] == QLatin1String("source")) show_source(parts[1].toInt(), parts[2].toInt());
    });
    connect(library_panel_, &LibraryPanel::statusMessage, this, &DocumentsPage::statusMessage);
    connect(library_panel_, &LibraryPanel::scopeChanged, this,
            [this] { scope_label_->setText(tr("Questions look in: %1").arg(library_panel_->scope_text())); });
    scope_label_->setText(tr("Questions look in: all documents"));

    connect(&library_, &app::DocumentLibrary::retrieved, this, &DocumentsPage::on_retrieved);
    connect(&library_, &app::DocumentLibrary::requestFailed, this, [this](quint64 id, const QString& message) {
        if (pending_ && pending_->retrieval_id == id) fail_pending(tr("Searching the documents failed: %1").arg(message));
        if (id == page_request_) viewer_->show_error(message);
    });
    connect(&library_, &app::DocumentLibrary::pageLoaded, this, [this](quint64 id, const app::PageView& view) {
        if (id != page_request_) return;
        viewer_->show_page(page_source_, view);
        emit pageShown();
    });
    const app::EngineWorker* worker = context_.engine.worker();
    connect(worker, &app::EngineWorker::modelLoaded, this, [this](const app::LoadedModelInfo& info) { model_ = info.path; });
    connect(worker, &app::EngineWorker::modelUnloaded, this, [this] { model_.clear(); });
    connect(worker, &app::EngineWorker::tokenText, this, [this](quint64 id, const QString& text) {
        if (!pending_ || pending_->generation_id != id) return;
        exchanges_.last().answer += text;
        render();
    });
    connect(worker, &app::EngineWorker::generationFinished, this,
            [this](quint64 id, const QString& text, const app::GenerationStats& stats, const app::RoutingSummary&) {
                on_generation_finished(id, text, stats);
            });
    connect(worker, &app::EngineWorker::generationFailed, this, [this](quint64 id, const QString& message) {
        if (pending_ && pending_->generation_id == id) fail_pending(message);
    });
}

void DocumentsPage::ask(const QString& text) {
    const QString question = text.trimmed();
    if (question.isEmpty() || pending_) return;
    if (model_.isEmpty()) {
        emit statusMessage(tr("Load a model first (Models page): it writes the answers"));
        return;
    }
    exchanges_ << Exchange{question, {}, {}, tr("Searching %1…").arg(library_panel_->scope_text())};
    pending_ = Pending{library_.retrieve(question, library_panel_->scope()), 0, false};
    question_->clear();
    ask_button_->setEnabled(false);
    stop_button_->setEnabled(true);
    render();
}

void DocumentsPage::on_retrieved(quint64 id, const QList<app::Passage>& passages, bool hybrid) {
    if (!pending_ || pending_->retrieval_id != id) return;
    Exchange& exchange = exchanges_.last();
    if (passages.isEmpty()) {
        fail_pending(tr("No passage of %1 matches the question. Add documents, check others, or ask with other words.")
                         .arg(library_panel_->scope_text()));
        return;
    }
    exchange.sources = app::numbered_sources(passages);
    exchange.note = hybrid ? tr("%n passage(s) found by BM25 and embeddings (fused)", nullptr, int(passages.size()))
                           : tr("%n passage(s) found by BM25", nullptr, int(passages.size()));
    pending_->hybrid = hybrid;
    const app::SamplingSettings sampling = context_.settings.default_sampling();
    pending_->generation_id = context_.engine.generate({app::grounded_question(exchange.question, exchange.sources)}, sampling);
    render();
}

void DocumentsPage::on_generation_finished(quint64 id, const QString& text, const app::GenerationStats& stats) {
    if (!pending_ || pending_->generation_id != id) return;
    Exchange& exchange = exchanges_.last();
    exchange.answer = text;
    exchange.note += " · " + app::stats_line(stats);
    const bool hybrid = pending_->hybrid;
    pending_.reset();
    ask_button_->setEnabled(true);
    stop_button_->setEnabled(false);
    render();
    store(exchange, stats, hybrid);
    emit answerFinished();
}

void DocumentsPage::fail_pending(const QString& message) {
    pending_.reset();
    exchanges_.last().note = message;
    ask_button_->setEnabled(true);
    stop_button_->setEnabled(false);
    render();
    emit statusMessage(message);
    emit answerFinished();
}

void DocumentsPage::stop() {
    if (!pending_) return;
    if (pending_->generation_id) context_.engine.stop(pending_->generation_id);
    else fail_pending(tr("Stopped"));
}

void DocumentsPage::store(const Exchange& exchange, const app::GenerationStats& stats, bool hybrid) {
    const QString model = model_;
    const QString params = QString::fromUtf8(
        QJsonDocument(QJsonObject{{"retrieval", hybrid ? "hybrid" : "bm25"}, {"embedding_model", library_.embeddingModel()}})
            .toJson(QJsonDocument::Compact));
    const qint64 known_run = run_id_;
    auto run_id = std::make_shared<qint64>(known_run);
    context_.storage.write([exchange, stats, model, params, run_id](app::RunDatabase& db) -> Status {
        if (*run_id == 0) {
            auto created = db.create_run("documents", exchange.question.left(80), model, params);
            if (!created) return created.error();
            *run_id = *created;
        }
        app::MessageRecord question;
        question.run_id = *run_id;
        question.role = "user";
        question.content = exchange.question;
        if (auto added = db.add_message(question); !added) return added.error();
        app::MessageRecord answer;
        answer.run_id = *run_id;
        answer.role = "assistant";
        answer.content = exchange.answer;
        answer.has_stats = true;
        answer.stats = stats;
        answer.sources = exchange.sources;
        if (auto added = db.add_message(answer); !added) return added.error();
        return Status::success();
    });
    // The id is known once the write ran; later answers of this session join that run.
    context_.storage.flush(this, [this, run_id, known_run] {
        if (run_id_ == known_run) run_id_ = *run_id;
    });
}

void DocumentsPage::open_run(qint64 run_id) {
    context_.storage.request<QList<app::MessageRecord>>(
        [run_id](app::RunDatabase& db) { return db.messages(run_id); }, this, [this, run_id](const QList<app::MessageRecord>& messages) {
            if (pending_) return;
            exchanges_.clear();
            for (const app::MessageRecord& m : messages) {
                if (m.role == QLatin1String("user")) exchanges_ << Exchange{m.content, {}, {}, {}};
                else if (!exchanges_.isEmpty()) {
                    exchanges_.last().answer = m.content;
                    exchanges_.last().sources = m.sources;
                    if (m.has_stats) exchanges_.last().note = app::stats_line(m.stats);
                }
            }
            run_id_ = run_id;
            render();
        });
}

void DocumentsPage::new_session() {
    if (pending_) return;
    exchanges_.clear();
    run_id_ = 0;
    render();
}

void DocumentsPage::show_source(int answer, int number) {
    if (answer < 0 || answer >= exchanges_.size()) return;
    const QList<app::CitedSource>& sources = exchanges_[answer].sources;
    if (number < 1 || number > sources.size()) return;
    page_source_ = sources[number - 1];
    viewer_->show_loading(page_source_);
    page_request_ = library_.loadPage(page_source_.document_id, page_source_.path, page_source_.page, page_source_.char_start, page_source_.char_end);
}

QString DocumentsPage::answer_html() const { return answers_->toHtml(); }

void DocumentsPage::render() {
    QString html;
    for (qsizetype i = 0; i < exchanges_.size(); ++i) {
        const Exchange& e = exchanges_[i];
        html += "<p><b>" + e.question.toHtmlEscaped() + "</b></p>";
        // A reasoning model's thinking is left out: the answer is what cites.
        const app::ReasoningSplit split = app::split_reasoning(e.answer);
        const QString answer = split.has_thinking ? split.answer : e.answer;
        if (split.has_thinking && !split.thinking_finished) html += "<p><i>" + tr("Thinking…") + "</i></p>";
        if (!answer.isEmpty()) html += "<p>" + linked_answer(answer, int(i), int(e.sources.size())) + "</p>";
        if (!e.sources.isEmpty()) {
            const QList<int> cited = app::cited_numbers(answer, int(e.sources.size()));
            html += "<p><small>" + tr("Sources:") + "<br>";
            for (const app::CitedSource& s : e.sources)
                html += QStringLiteral("<a href='source:%1:%2'>[%2]</a> %3, %4%5<br>")
                            .arg(i)
                            .arg(s.number)
                            .arg(s.document.toHtmlEscaped(), tr("page %1").arg(s.page), cited.contains(s.number) ? QString() : tr(" (not cited)"));
            html += "</small></p>";
        }
        if (!e.note.isEmpty()) html += "<p style='color: gray'><small>" + e.note.toHtmlEscaped() + "</small></p>";
        html += "<hr>";
    }
    answers_->setHtml(html);
    answers_->verticalScrollBar()->setValue(answers_->verticalScrollBar()->maximum());
}

void DocumentsPage::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void DocumentsPage::dropEvent(QDropEvent* event) {
    QStringList paths;
    for (const QUrl& url : event->mimeData()->urls())
        if (url.isLocalFile()) paths << url.toLocalFile();
    if (paths.isEmpty()) return;
    event->acceptProposedAction();
    library_panel_->add_paths(paths);
}

}  // namespace mwb::ui
