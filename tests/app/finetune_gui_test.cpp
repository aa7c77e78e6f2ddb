// The Fine-tune page end to end, offscreen, on the demo model and the bundled dataset: the wizard from the model
// to a chat with the adapter, a run killed mid-way and resumed at the next launch, a stopped run resumed from
// the Runs page. Each is checked against `mwb train` on the same settings. Screenshots go to MWB_TEST_OUTPUT.
#include <QAbstractButton>
#include <QApplication>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QProcess>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTextBrowser>
#include <QTreeWidget>
#include <QWizard>
#include <utility>
#include <vector>

#include "app/services/run_database.h"
#include "gui_support.h"
#include "ui/chat_page.h"
#include "ui/finetune/finetune_page.h"
#include "ui/finetune/finetune_steps.h"
#include "ui/models_page.h"
#include "ui/runs_page.h"

namespace {

// The one fine-tune run in the history of `settings`, with its stored curve.
std::pair<RunRecord, QList<TrainingStep>> stored_training(const Settings& settings) {
    RunDatabase db("training-reader");
    if (!db.open(settings.database_path()).ok()) return {};
    RunFilter finetunes;
    finetunes.kind = "finetune";
    const auto runs = db.list_runs(finetunes);
    if (!runs || runs->size() != 1) return {};
    return {runs->first(), *db.training_steps(runs->first().id)};
}

// The losses of `mwb train` on the demo model and dataset with the Quick look preset's settings for `steps` steps.
std::vector<double> quick_look_cli_losses(const Settings& settings, int steps, const QString& scratch) {
    QDir().mkpath(scratch);
    QProcess cli;
    cli.start(MWB_CLI, {"train", settings.demo_model_directory(), "--data", QDir(settings.data_directory()).filePath("datasets/demo_instructions.jsonl"),
                        "--out", scratch + "/adapter", "--targets", "q_proj,q_a_proj,q_b_proj,kv_a_proj_with_mqa,kv_b_proj,k_proj,v_proj,o_proj",
                        "--rank", "8", "--alpha", "16", "--lr", "0.001", "--batch", "4", "--grad-accum", "1", "--steps", QString::number(steps),
                        "--scheduler", "cosine", "--warmup", "0", "--clip", "1", "--seed", "42", "--cutoff", "1024", "--metrics",
                        scratch + "/metrics.jsonl"});
    if (!cli.waitForFinished(120000) || cli.exitCode() != 0) {
        qWarning("%s", cli.readAllStandardError().constData());
        return {};
    }
    QFile metrics(scratch + "/metrics.jsonl");
    if (!metrics.open(QIODevice::ReadOnly)) return {};
    std::vector<double> losses;
    for (const QByteArray& line : metrics.readAll().trimmed().split('\n')) losses.push_back(QJsonDocument::fromJson(line).object()["loss"].toDouble());
    return losses;
}

// Walks the Fine-tune wizard of a started app with the demo model, the bundled dataset and Quick look for
// `steps` steps, and starts training.
ui::FineTunePage* start_quick_look(TestApp& app, int steps, int checkpoint_every) {
    app.window.show_page(ui::MainWindow::Page::FineTune);
    ui::FineTunePage* page = app.window.finetune_page();
    QAbstractButton* next = page->wizard()->button(QWizard::NextButton);
    if (!QTest::qWaitFor([&] { return next->isEnabled(); }, 30000)) return nullptr;
    next->click();
    QTest::mouseClick(page->findChild<QPushButton*>("useDemoData"), Qt::LeftButton);
    if (!QTest::qWaitFor([&] { return page->findChild<QLabel*>("dataSummary")->text().contains("302 rows") && next->isEnabled(); }, 30000))
        return nullptr;
    next->click();
    page->findChild<QSpinBox*>("steps")->setValue(steps);
    page->findChild<QSpinBox*>("checkpointEvery")->setValue(checkpoint_every);
    if (!QTest::qWaitFor([&] { return page->findChild<QLabel*>("memoryPlan")->text().contains("Fits") && next->isEnabled(); }, 30000))
        return nullptr;
    next->click();
    return page;
}

}  // namespace

class FineTuneGuiTest : public QObject {
    Q_OBJECT

    QTemporaryDir root_;

    QString settings_file(const QString& name) const { return root_.filePath(name + ".ini"); }

private slots:
    void initTestCase() {
        prepare_gui_test();
    }

    // The Fine-tune wizard end to end on the demo model and the bundled dataset: the data step shows the format,
    // statistics and bad lines; a plan larger than the memory allowed is refused with its numbers; training draws
    // one point per step, keeps its curve in the history and gives the same losses as `mwb train` with the same
    // settings; the exported folder is a PEFT adapter; Chat then replies with the adapter and says so.
    void fineTuneWizardTrainsExportsAndChats() {
        Settings settings(settings_file("finetune"));
        use_test_folders(settings, root_, "finetune-data");
        TestApp app(settings, {1280, 800});
        ui::MainWindow& window = app.window;
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        window.show_page(ui::MainWindow::Page::FineTune);
        ui::FineTunePage* page = window.finetune_page();
        QWizard* wizard = page->wizard();
        QAbstractButton* next = wizard->button(QWizard::NextButton);
        QTRY_VERIFY(page->findChild<QLineEdit*>("fineTuneModel")->text() == settings.demo_model_directory());
        QTRY_VERIFY_WITH_TIMEOUT(next->isEnabled(), 30000);
        // The library offers the models of the Models page.
        auto* library = page->findChild<QComboBox*>("fineTuneLibrary");
        QTRY_VERIFY(library->findData(settings.demo_model_directory()) >= 0);
        save_screenshot(window, "finetune-1-model");
        next->click();

        // Data: a bad line is listed with its number, the bundled dataset is read and previewed.
        const QString bad = root_.filePath("bad.jsonl");
        QFile bad_file(bad);
        QVERIFY(bad_file.open(QIODevice::WriteOnly));
        bad_file.write("{\"instruction\": \"Say hi\", \"output\": \"hi\"}\n{\"instruction\": \"broken\"}\n");
        bad_file.close();
        page->findChild<QLineEdit*>("fineTuneData")->setText(bad);
        auto* bad_lines = page->findChild<QListWidget*>("badLines");
        QTRY_VERIFY_WITH_TIMEOUT(bad_lines->count() == 1, 30000);
        QVERIFY2(bad_lines->item(0)->text().startsWith("line 2:") && bad_lines->item(0)->text().contains("output"),
                 qPrintable(bad_lines->item(0)->text()));
        QTest::mouseClick(page->findChild<QPushButton*>("useDemoData"), Qt::LeftButton);
        auto* summary = page->findChild<QLabel*>("dataSummary");
        QTRY_VERIFY_WITH_TIMEOUT(summary->text().contains("302 rows"), 30000);
        QVERIFY2(summary->text().contains("Format: mixed"), qPrintable(summary->text()));  // alpaca and messages lines
        QVERIFY(!bad_lines->isVisible());
        QVERIFY(page->findChild<QTextBrowser*>("dataPreview")->toHtml().contains("c8f0c8"));  // learnt tokens marked
        QTRY_VERIFY(next->isEnabled());
        save_screenshot(window, "finetune-2-data");
        next->click();

        // Method: Quick look for 4 steps; too little memory allowed is refused with the numbers.
        auto* plan = page->findChild<QLabel*>("memoryPlan");
        QTRY_VERIFY_WITH_TIMEOUT(plan->text().contains("Fits"), 30000);
        page->findChild<QDoubleSpinBox*>("memoryAllowed")->setValue(0.01);
        QTRY_VERIFY_WITH_TIMEOUT(plan->text().contains("needs") && plan->text().contains("0.01 GiB are allowed"), 30000);
        QVERIFY(plan->text().contains("gradient checkpointing"));
        QVERIFY(!next->isEnabled());
        save_screenshot(window, "finetune-3-method-refused");
        page->findChild<QDoubleSpinBox*>("memoryAllowed")->setValue(16);
        page->findChild<QSpinBox*>("steps")->setValue(4);
        page->findChild<QSpinBox*>("checkpointEvery")->setValue(2);
        QTRY_VERIFY_WITH_TIMEOUT(plan->text().contains("Fits") && next->isEnabled(), 30000);
        save_screenshot(window, "finetune-3-method");
        next->click();

        // Train: one point per step, then the result.
        auto* train_step = qobject_cast<ui::TrainStep*>(wizard->currentPage());
        QVERIFY(train_step);
        QTRY_VERIFY_WITH_TIMEOUT(page->state().finished, 120000);
        QCOMPARE(train_step->points(), 4);
        QVERIFY(!page->state().stopped);
        save_screenshot(window, "finetune-4-train");
        const QString adapter = page->state().adapter_directory;
        QVERIFY(QFileInfo::exists(adapter + "/adapter_model.safetensors"));
        QVERIFY(QFileInfo::exists(adapter + "/checkpoint-2/optimizer.safetensors"));

        // The history keeps the run and its curve; the command line trains the same way.
        wait_for_storage(app.storage);
        const auto [run, curve] = stored_training(settings);
        QCOMPARE(run.status, QStringLiteral("finished"));
        QCOMPARE(curve.size(), 4);
        const std::vector<double> cli = quick_look_cli_losses(settings, 4, root_.filePath("cli-4"));
        QCOMPARE(cli.size(), size_t(4));
        for (int i = 0; i < 4; ++i) QCOMPARE(cli[size_t(i)], curve.at(i).loss);

        // The Runs page lists the run and draws its curve.
        window.show_page(ui::MainWindow::Page::Runs);
        auto* table = window.runs_page()->findChild<QTableWidget*>("runsTable");
        window.runs_page()->refresh();
        QTRY_VERIFY(table->rowCount() >= 1);
        for (int row = 0; row < table->rowCount(); ++row)
            if (table->item(row, 1)->text() == "finetune") table->selectRow(row);
        auto* curve_view = window.runs_page()->findChild<QChartView*>("runCurve");
        QTRY_VERIFY(curve_view->isVisible() && !curve_view->chart()->series().isEmpty());
        QCOMPARE(qobject_cast<QLineSeries*>(curve_view->chart()->series().first())->count(), 4);
        save_screenshot(window, "runs-finetune");
        window.show_page(ui::MainWindow::Page::FineTune);

        // Finish: export a PEFT adapter, then chat with it.
        next->click();
        auto* finish = qobject_cast<ui::FinishStep*>(wizard->currentPage());
        QVERIFY(finish);
        const QString exported = root_.filePath("exported-adapter");
        QVERIFY(QDir().mkpath(exported));
        QVERIFY(finish->export_adapter(exported));
        const QJsonObject config = QJsonDocument::fromJson([&] {
            QFile f(exported + "/adapter_config.json");
            f.open(QIODevice::ReadOnly);
            return f.readAll();
        }()).object();
        QCOMPARE(config["peft_type"].toString(), QStringLiteral("LORA"));
        QCOMPARE(config["r"].toInt(), 8);
        // The history knows the run's checkpoints and exports.
        wait_for_storage(app.storage);
        const QJsonObject params = QJsonDocument::fromJson(stored_training(settings).first.params_json.toUtf8()).object();
        QVERIFY(params["exports"].toArray().contains(exported));
        QVERIFY(params["checkpoints"].toArray().contains(adapter + "/checkpoint-2"));
        QVERIFY(!params["data_sha256"].toString().isEmpty());
        // Side by side: the base model's and the adapter's greedy replies, each what `mwb generate` gives.
        QSignalSpy compared(finish, &ui::FinishStep::compared);
        finish->compare("What is 2 plus 3?");
        QTRY_VERIFY_WITH_TIMEOUT(compared.size() >= 1, 60000);
        auto generate = [&](const QStringList& extra) {
            QProcess cli;
            cli.start(MWB_CLI, QStringList{"generate", settings.demo_model_directory(), "--chat", "--prompt", "What is 2 plus 3?", "--temperature", "0",
                                           "--max-new", "48"} + extra);
            cli.waitForFinished(60000);
            return QString::fromUtf8(cli.readAllStandardOutput()).chopped(1);
        };
        QCOMPARE(page->findChild<QTextBrowser*>("baseReply")->toPlainText(), generate({}));
        QCOMPARE(page->findChild<QTextBrowser*>("adapterReply")->toPlainText(), generate({"--adapter", adapter}));
        save_screenshot(window, "finetune-5-finish");

        // The Models page lists the adapter right after the model it was trained for.
        window.show_page(ui::MainWindow::Page::Models);
        QSignalSpy scanned(window.models_page(), &ui::ModelsPage::scanFinished);
        window.models_page()->rescan();
        QTRY_VERIFY(scanned.size() >= 1);
        auto* models = window.models_page()->findChild<QTreeWidget*>("modelList");
        int demo_row = -1, adapter_row = -1;
        for (int i = 0; i < models->topLevelItemCount(); ++i) {
            const QString path = models->topLevelItem(i)->data(0, Qt::UserRole).toString();
            if (path == settings.demo_model_directory()) demo_row = i;
            if (path == QDir::cleanPath(adapter)) adapter_row = i;
        }
        QVERIFY(demo_row >= 0);
        QCOMPARE(adapter_row, demo_row + 1);
        QCOMPARE(models->topLevelItem(adapter_row)->text(1), QStringLiteral("LoRA adapter"));
        QSignalSpy card_shown(window.models_page(), &ui::ModelsPage::cardShown);
        models->setCurrentItem(models->topLevelItem(adapter_row));
        QTRY_VERIFY(card_shown.size() >= 1);
        QVERIFY(window.models_page()->findChild<QTextBrowser*>("modelCard")->toPlainText().contains("rank 8"));
        QCOMPARE(window.models_page()->findChild<QPushButton*>("loadModelButton")->text(), QStringLiteral("Chat with this adapter"));
        save_screenshot(window, "models-adapter");
        window.show_page(ui::MainWindow::Page::FineTune);
        testing::QueuedSpy adapted(app.engine.worker(), &EngineWorker::adapterChanged);
        QTest::mouseClick(page->findChild<QPushButton*>("chatWithAdapter"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(adapted.size() >= 1, 30000);
        ui::ChatPage* chat = window.chat_page();
        QTRY_VERIFY(chat->findChild<QLabel*>("chatModel")->text().contains("with the adapter"));
        chat->findChild<QPlainTextEdit*>("chatInput")->setPlainText("What is 2 plus 3?");
        QSignalSpy replied(chat, &ui::ChatPage::replyFinished);
        chat->send();
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 1, 60000);
        save_screenshot(window, "finetune-6-chat-with-adapter");

        // The Inspector re-runs a message with the adapter applied: its attention is not the base model's.
        testing::QueuedSpy inspected(app.engine.worker(), &EngineWorker::inspectionFinished);
        QTRY_VERIFY(button(chat->message_widgets()[0], "Inspect"));
        QTest::mouseClick(button(chat->message_widgets()[0], "Inspect"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(inspected.size() >= 1, 30000);
        const auto with_adapter = app.engine.inspector()->snapshot().attention.at(0).rows.at(5);
        app.engine.setAdapter({});
        QTRY_VERIFY(!chat->findChild<QLabel*>("chatModel")->text().contains("with the adapter"));
        window.show_page(ui::MainWindow::Page::Chat);
        QTRY_VERIFY(button(chat->message_widgets()[0], "Inspect"));
        QTest::mouseClick(button(chat->message_widgets()[0], "Inspect"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(inspected.size() >= 2, 30000);
        QVERIFY(app.engine.inspector()->snapshot().attention.at(0).rows.at(5) != with_adapter);
    }

    // A training run killed mid-way (the history and the output folder as a kill leaves them: steps up to 3 stored,
    // the checkpoint of step 2 on disk) is offered at the next launch and goes on from its checkpoint; the curve
    // continues the old one and the losses are those of a run that was never interrupted.
    void interruptedTrainingResumesFromItsCheckpoint() {
        Settings settings(settings_file("resume"));
        use_test_folders(settings, root_, "resume-data");
        const QString database = settings.database_path();
        const QString snapshot = root_.filePath("training-killed.sqlite");
        QString output;
        {
            TestApp app(settings, {1280, 800});
            app.window.start();
            QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
            ui::FineTunePage* page = start_quick_look(app, 6, 2);
            // Paused after step 3, the files are what a kill at that moment leaves.
            testing::QueuedSpy steps(page->training().worker(), &TrainingWorker::stepFinished);
            connect(page->training().worker(), &TrainingWorker::stepFinished, page->training().worker(),
                    [&page](const TrainingStep& step) { if (step.step == 3) page->training().pause(); }, Qt::DirectConnection);
            QTRY_VERIFY_WITH_TIMEOUT(steps.size() >= 3, 60000);
            wait_for_storage(app.storage);
            output = QString::fromStdString(page->state().job.options.output_directory);
            QVERIFY(QFileInfo::exists(output + "/checkpoint-2/trainer_state.json"));
            app.storage.post([&](RunDatabase&) {
                QFile::copy(database, snapshot);
                QFile::copy(database + "-wal", snapshot + "-wal");
            });
            wait_for_storage(app.storage);
        }
        // The kill: the history as copied, and nothing written to the output folder after step 3.
        for (const char* suffix : {"", "-wal", "-shm"}) QFile::remove(database + suffix);
        QVERIFY(QFile::copy(snapshot, database));
        QVERIFY(QFile::copy(snapshot + "-wal", database + "-wal"));
        for (const QString& name : QDir(output).entryList({"checkpoint-*"}, QDir::Dirs))
            if (name != "checkpoint-2") QVERIFY(QDir(output + "/" + name).removeRecursively());
        QFile::remove(output + "/adapter_model.safetensors");

        TestApp app(settings, {1280, 800});
        app.window.start();
        app.window.show_page(ui::MainWindow::Page::FineTune);
        ui::FineTunePage* page = app.window.finetune_page();
        auto* banner = page->findChild<QWidget*>("resumeBanner");
        QTRY_VERIFY_WITH_TIMEOUT(banner->isVisible(), 30000);
        save_screenshot(app.window, "finetune-interrupted");
        QTest::mouseClick(page->findChild<QPushButton*>("resumeTraining"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(page->state().finished, 120000);
        auto* train_step = qobject_cast<ui::TrainStep*>(page->wizard()->currentPage());
        QVERIFY(train_step);
        QCOMPARE(train_step->points(), 6);  // steps 1-2 from the history, 3-6 trained again
        save_screenshot(app.window, "finetune-resumed");
        wait_for_storage(app.storage);
        const auto [run, curve] = stored_training(settings);
        QCOMPARE(run.status, QStringLiteral("finished"));
        QCOMPARE(curve.size(), 6);
        const std::vector<double> cli = quick_look_cli_losses(settings, 6, root_.filePath("cli-6"));
        QCOMPARE(cli.size(), size_t(6));
        for (int i = 0; i < 6; ++i) QCOMPARE(curve.at(i).loss, cli[size_t(i)]);
    }

    // A run stopped with Stop keeps a checkpoint; the Runs page offers Resume, and the run goes on to its end with
    // the losses of a run that was never stopped.
    void stoppedTrainingResumesFromTheRunsPage() {
        Settings settings(settings_file("stopped"));
        use_test_folders(settings, root_, "stopped-data");
        TestApp app(settings, {1280, 800});
        app.window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        ui::FineTunePage* page = start_quick_look(app, 6, 0);
        QVERIFY(page);
        connect(page->training().worker(), &TrainingWorker::stepFinished, page->training().worker(),
                [&page](const TrainingStep& step) { if (step.step == 2) page->training().pause(); }, Qt::DirectConnection);
        testing::QueuedSpy steps(page->training().worker(), &TrainingWorker::stepFinished);
        QTRY_VERIFY_WITH_TIMEOUT(steps.size() >= 2, 60000);
        QTest::mouseClick(page->findChild<QPushButton*>("stopTraining"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(page->state().finished, 60000);
        QVERIFY(page->state().stopped);
        wait_for_storage(app.storage);
        QCOMPARE(stored_training(settings).first.status, QStringLiteral("stopped"));

        app.window.show_page(ui::MainWindow::Page::Runs);
        auto* table = app.window.runs_page()->findChild<QTableWidget*>("runsTable");
        app.window.runs_page()->refresh();
        QTRY_VERIFY(table->rowCount() == 1 && table->item(0, 5)->text() == "stopped");
        table->selectRow(0);
        auto* resume = app.window.runs_page()->findChild<QPushButton*>("resumeRun");
        QTRY_VERIFY(resume->isVisible());
        // The wizard is at its last step: Finish first, as a user would, then resume.
        page->wizard()->restart();
        QTest::mouseClick(resume, Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(page->isVisible() && page->state().finished && !page->state().stopped, 120000);
        QCOMPARE(qobject_cast<ui::TrainStep*>(page->wizard()->currentPage())->points(), 6);
        wait_for_storage(app.storage);
        const auto [run, curve] = stored_training(settings);
        QCOMPARE(run.status, QStringLiteral("finished"));
        const std::vector<double> cli = quick_look_cli_losses(settings, 6, root_.filePath("cli-stopped"));
        QCOMPARE(int(curve.size()), 6);
        QCOMPARE(cli.size(), size_t(6));
        for (int i = 0; i < 6; ++i) QCOMPARE(curve.at(i).loss, cli[size_t(i)]);
    }
};

QTEST_MAIN(FineTuneGuiTest)
#include "finetune_gui_test.moc"
