// The Documents page: the library on the left, questions and their answers in the middle, the cited page on
// the right. A question retrieves passages from the checked documents (BM25, or hybrid with an embedding
// model), the model loaded in Chat answers from them with citations [1], [2] that are links to the page with
// the passage highlighted, and each answer is stored with its sources as a "documents" run in the history.
#pragma once

#include <QWidget>
#include <optional>

#include "app/services/document_library.h"
#include "ui/app_context.h"

class QLabel;
class QLineEdit;
class QPushButton;
class QTextBrowser;

namespace mwb::ui {

class LibraryPanel;
class PageViewer;

class DocumentsPage : public QWidget {
    Q_OBJECT
public:
    DocumentsPage(AppContext& context, app::DocumentLibrary& library, QWidget* parent = nullptr);

    void ask(const QString& question);
    // Shows a stored documents run: its questions, answers and sources.
    void open_run(qint64 run_id);
    void new_session();
    // Shows the page of source `number` of answer `answer` (from 0), as a click on its citation does.
    void show_source(int answer, int number);
    bool answering() const { return pending_.has_value(); }
    LibraryPanel* library_panel() const { return library_panel_; }
    PageViewer* page_viewer() const { return viewer_; }
    QString answer_html() const;

signals:
    void statusMessage(QString text);
    void answerFinished();
    void pageShown();

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    struct Exchange {
        QString question;
        QString answer;
        QList<app::CitedSource> sources;
        QString note;  // retrieval mode, statistics or an error
    };
    struct Pending {
        quint64 retrieval_id = 0;
        quint64 generation_id = 0;
        bool hybrid = false;
    };

    void on_retrieved(quint64 id, const QList<app::Passage>& passages, bool hybrid);
    void on_generation_finished(quint64 id, const QString& text, const app::GenerationStats& stats);
    void fail_pending(const QString& message);
    void store(const Exchange& exchange, const app::GenerationStats& stats, bool hybrid);
    void render();
    void stop();

    AppContext& context_;
    app::DocumentLibrary& library_;
    LibraryPanel* library_panel_;
    PageViewer* viewer_;
    QLineEdit* question_;
    QPushButton* ask_button_;
    QPushButton* stop_button_;
    QTextBrowser* answers_;
    QLabel* scope_label_;
    QList<Exchange> exchanges_;
    std::optional<Pending> pending_;
    quint64 page_request_ = 0;
    app::CitedSource page_source_;
    qint64 run_id_ = 0;  // the stored documents run of this session; 0 until its first answer
    QString model_;      // the model Chat has loaded
};

}  // namespace mwb::ui
