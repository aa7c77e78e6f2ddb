// The Export page offscreen: DeepSeek-V3 (config only) planned on 8×H200 (fits) and 8×H100 (refused, with the
// cluster that fits), the files of two targets shown, and Save writing every file and recording the export in
// the history. Screenshots: export-plan, export-vllm, export-k8s, export-refused.
#include <QtTest>

#include <QLabel>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QTabWidget>

#include "gui_support.h"
#include "ui/export_page.h"

class ExportGuiTest : public QObject {
    Q_OBJECT

    QTemporaryDir root_;

private slots:
    void initTestCase() { prepare_gui_test(); }

    void plansAndSavesADeployment() {
        Settings settings(root_.filePath("export.ini"));
        use_test_folders(settings, root_, "data");
        TestApp app(settings, {1280, 800});
        ui::MainWindow& window = app.window;
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        window.show_page(ui::MainWindow::Page::Export);
        ui::ExportPage* page = window.export_page();

        app::ExportRequest request;
        request.model_directory = MWB_TEST_DATA "/deploy/deepseek-v3";
        request.model_id = "deepseek-ai/DeepSeek-V3";
        request.gpu = "h200";
        request.gpus_per_node = 8;
        request.nodes = 1;
        request.context = 32768;
        request.concurrency = 64;
        QSignalSpy shown(page, &ui::ExportPage::planShown);
        page->set_request(request);
        QTRY_VERIFY_WITH_TIMEOUT(shown.size() >= 1 && page->preview() && page->preview()->plan.request.gpu.id == "h200", 20000);
        auto* verdict = page->findChild<QLabel*>("exportVerdict");
        QVERIFY2(verdict->text().contains("Fits on 8×NVIDIA H200 as DP attention 8, EP8"), qPrintable(verdict->text()));
        save_screenshot(window, "export-plan");
        page->show_target("vllm");
        QVERIFY(page->findChild<QTabWidget*>("exportTargets")->currentWidget()->findChild<QPlainTextEdit*>()->toPlainText().contains(
            "--data-parallel-size 8"));
        save_screenshot(window, "export-vllm");
        page->show_target("k8s");
        QVERIFY(page->findChild<QTabWidget*>("exportTargets")->currentWidget()->findChild<QPlainTextEdit*>()->toPlainText().contains(
            "kind: Deployment"));
        save_screenshot(window, "export-k8s");

        request.gpu = "h100";
        shown.clear();
        page->set_request(request);
        QTRY_VERIFY_WITH_TIMEOUT(page->preview() && page->preview()->plan.request.gpu.id == "h100", 20000);
        QVERIFY(verdict->text().contains("Does not fit on 8×NVIDIA H100"));
        QVERIFY(page->preview()->plan.smallest_fit && page->preview()->plan.smallest_fit->find("needs 2 nodes") != std::string::npos);
        page->show_target("vllm");
        save_screenshot(window, "export-refused");

        // Saved: every target's files, the README and the plan; the history has the export.
        QSignalSpy saved(page, &ui::ExportPage::exportSaved);
        const QString folder = root_.filePath("deployment");
        page->save_to(folder);
        QCOMPARE(saved.size(), 1);
        for (const char* file : {"README.md", "plan.json", "vllm/serve.sh", "sglang/serve.sh", "trtllm/config.yml", "llama-server/serve.sh",
                                 "ollama/Modelfile", "k8s/deepseek-v3.yaml", "compose/compose.yaml"})
            QVERIFY2(QFileInfo::exists(folder + "/" + file), file);
        wait_for_storage(app.storage);
        RunDatabase db("export-gui-test-reader");
        QVERIFY(db.open(settings.database_path()));
        auto runs = db.list_runs();
        QVERIFY(runs);
        const auto exported = std::find_if(runs->begin(), runs->end(), [](const RunRecord& r) { return r.kind == "export"; });
        QVERIFY(exported != runs->end());
        QVERIFY(exported->title.contains("DeepSeek-V3") && exported->title.contains("H100"));
    }
};

QTEST_MAIN(ExportGuiTest)
#include "export_gui_test.moc"
