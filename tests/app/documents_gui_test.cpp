// The Documents page offscreen: a folder with a text PDF (a known fact on each page) and a scanned PDF is
// dropped into the library, questions are asked of the demo model, citations are clicked and the cited page is
// shown with the passage highlighted where it was drawn; the answer and its sources are in the history.
// Screenshots: documents-library, documents-answer, documents-citation, documents-ocr-citation.
#include <QtTest>

#include <QLabel>
#include <QMimeData>
#include <QTextBrowser>
#include <QTreeWidget>

#include "app/documents/sample_documents.h"
#include "gui_support.h"
#include "ui/documents/documents_page.h"
#include "ui/documents/library_panel.h"
#include "ui/documents/page_viewer.h"

namespace {

QList<QStringList> survey_pages() {
    const QStringList facts = {"The capital of the kingdom of Varnholt is Leristad.", "Copper mining near Dunmarrow ended in 1887.",
                               "The Orlov lighthouse beam reaches 22 nautical miles.", "Saffron from Kozani is harvested in October."};
    QList<QStringList> pages;
    for (qsizetype i = 0; i < facts.size(); ++i)
        pages << QStringList{QStringLiteral("Survey report, page %1.").arg(i + 1), "The survey office keeps records.", facts[i]};
    return pages;
}

// The shares of pixels in `area` (fractions of the page) that are highlighted paper (yellow) and bare paper (white).
std::pair<double, double> paper_colours(const QImage& page, const QRectF& area) {
    const QRect pixels(int(area.left() * page.width()), int(area.top() * page.height()), int(area.width() * page.width()),
                       int(area.height() * page.height()));
    int yellow = 0, white = 0, all = 0;
    for (int y = pixels.top(); y <= pixels.bottom(); ++y)
        for (int x = pixels.left(); x <= pixels.right(); ++x) {
            const QColor c = page.pixelColor(x, y);
            yellow += c.red() > 200 && c.green() > 180 && c.blue() < 120;
            white += c.red() > 245 && c.green() > 245 && c.blue() > 245;
            ++all;
        }
    return {double(yellow) / std::max(1, all), double(white) / std::max(1, all)};
}

}  // namespace

class DocumentsGuiTest : public QObject {
    Q_OBJECT

    QTemporaryDir root_;

private slots:
    void initTestCase() { prepare_gui_test(); }

    void asksDocumentsAndShowsCitedPages() {
        Settings settings(root_.filePath("documents.ini"));
        use_test_folders(settings, root_, "data");
        TestApp app(settings, {1500, 900});
        ui::MainWindow& window = app.window;
        app::DocumentLibrary& library = window.document_library();
        testing::QueuedSpy opened(&library, &DocumentLibrary::opened);
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1 && opened.size() >= 1, 120000);
        window.show_page(ui::MainWindow::Page::Documents);
        ui::DocumentsPage* page = window.documents_page();

        const QString folder = root_.filePath("reports");
        QVERIFY(QDir().mkpath(folder));
        QVERIFY(write_text_pdf(folder + "/survey.pdf", survey_pages()));
        QVERIFY(write_scanned_pdf(folder + "/memo-scan.pdf",
                                  {{"Scanned memo from the harbour office.", "The lighthouse keeper Halvard Brenn logged forty storms"}}, 200));
        // Dropped onto the page, as from a file manager.
        testing::QueuedSpy added(&library, &DocumentLibrary::addFinished);
        QMimeData mime;
        mime.setUrls({QUrl::fromLocalFile(folder)});
        // Qt delivers a drop only to the widget that accepted the drag's entry.
        QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(page, &enter);
        QVERIFY(enter.isAccepted());
        QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(page, &drop);
        QTRY_VERIFY_WITH_TIMEOUT(added.size() == 1, 120000);
        const auto summary = added.first().at(0).value<IngestSummary>();
        QCOMPARE(summary.indexed, 2);
        QCOMPARE(summary.failed, 0);
        auto* tree = page->findChild<QTreeWidget*>("documentTree");
        QTRY_VERIFY(tree->topLevelItemCount() == 1 && tree->topLevelItem(0)->childCount() == 2);
        QCOMPARE(tree->topLevelItem(0)->text(0), QString("reports"));  // a folder's documents join its collection
        QCOMPARE(tree->topLevelItem(0)->child(1)->text(0), QString("survey.pdf"));
        QCOMPARE(tree->topLevelItem(0)->child(1)->text(1), QString("4"));
        save_screenshot(window, "documents-library");

        QSignalSpy answered(page, &ui::DocumentsPage::answerFinished);
        QSignalSpy shown(page, &ui::DocumentsPage::pageShown);
        page->ask("How far does the Orlov lighthouse beam reach?");
        QTRY_VERIFY_WITH_TIMEOUT(answered.size() == 1, 120000);
        auto* answers = page->findChild<QTextBrowser*>("answerView");
        QVERIFY2(answers->toPlainText().contains("[1] survey.pdf, page 3"), qPrintable(answers->toPlainText()));
        save_screenshot(window, "documents-answer");

        // The first source's link, as a click on it sends it.
        emit answers->anchorClicked(QUrl("source:0:1"));
        QTRY_VERIFY_WITH_TIMEOUT(shown.size() == 1, 30000);
        ui::PageViewer* viewer = page->page_viewer();
        QVERIFY(viewer->findChild<QLabel*>("pageTitle")->text().contains("survey.pdf, page 3"));
        // The cited chunk is the page's three lines (a short page is one chunk): baselines at 72, 90 and 108 points
        // down the 842-point page, from 56 points left; below them the paper stays white.
        const QImage drawn = viewer->rendered();
        QVERIFY(!drawn.isNull());
        QVERIFY(drawn.save(QStringLiteral(MWB_TEST_OUTPUT "/documents-cited-page.png")));
        for (double baseline : {72.0, 90.0, 108.0}) {
            const auto [yellow, white] = paper_colours(drawn, QRectF(60.0 / 595, (baseline - 7) / 842, 100.0 / 595, 6.0 / 842));
            QVERIFY2(yellow > 0.2 && white < 0.02, qPrintable(QString("the line at %1 points: %2 yellow, %3 white").arg(baseline).arg(yellow).arg(white)));
        }
        const auto [yellow_below, white_below] = paper_colours(drawn, QRectF(60.0 / 595, 130.0 / 842, 100.0 / 595, 6.0 / 842));
        QCOMPARE(yellow_below, 0.0);
        QCOMPARE(white_below, 1.0);
        save_screenshot(window, "documents-citation");

        page->ask("Who logged forty storms at the lighthouse?");
        QTRY_VERIFY_WITH_TIMEOUT(answered.size() == 2, 120000);
        emit answers->anchorClicked(QUrl("source:1:1"));
        QTRY_VERIFY_WITH_TIMEOUT(shown.size() == 2, 30000);
        const QString title = viewer->findChild<QLabel*>("pageTitle")->text();
        QVERIFY2(title.contains("memo-scan.pdf, page 1") && title.contains("OCR"), qPrintable(title));
        save_screenshot(window, "documents-ocr-citation");

        // Both answers are one documents run, each with its sources.
        wait_for_storage(app.storage);
        RunDatabase db("documents-gui-reader");
        QVERIFY(db.open(settings.database_path()).ok());
        RunFilter filter;
        filter.kind = "documents";
        auto runs = db.list_runs(filter);
        QVERIFY(runs && runs->size() == 1);
        auto messages = db.messages(runs->first().id);
        QVERIFY(messages && messages->size() == 4);
        QCOMPARE(messages->at(0).content, QString("How far does the Orlov lighthouse beam reach?"));
        QVERIFY(!messages->at(1).sources.isEmpty());
        QCOMPARE(messages->at(1).sources.first().document, QString("survey.pdf"));
        QCOMPARE(messages->at(1).sources.first().page, 3);
        QCOMPARE(messages->at(3).sources.first().document, QString("memo-scan.pdf"));

        // Reopened from the history, the answers keep their working citations.
        page->new_session();
        page->open_run(runs->first().id);
        QTRY_VERIFY(answers->toPlainText().contains("[1] memo-scan.pdf, page 1"));
    }
};

QTEST_MAIN(DocumentsGuiTest)
#include "documents_gui_test.moc"
