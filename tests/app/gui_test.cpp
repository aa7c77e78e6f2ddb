// The desktop app end to end, offscreen: first launch creates and loads the demo model and chats with it; edits
// and regenerations keep every version; replies survive a quit and a kill; the layout fits 1024×700; the
// Inspector re-runs any message; the Models page handles failed loads and tokenizer folders; the Runs page lists
// and exports; a crash during a model load is not repeated. Screenshots go to MWB_TEST_OUTPUT. (The Fine-tune
// page has its own suite, finetune_gui_test.cpp.)
#include <QApplication>
#include <QComboBox>
#include <QFileDialog>
#include <QGlyphRun>
#include <QHeaderView>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRawFont>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSignalSpy>
#include <QSpinBox>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QStandardPaths>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTextBrowser>
#include <QTextLayout>
#include <QTimer>
#include <QToolButton>
#include <QTreeWidget>
#include <cmath>
#include <cstdint>

#include "app/services/run_database.h"
#include "gui_support.h"
#include "ui/chat_page.h"
#include "ui/elided_label.h"
#include "ui/inspector/heatmap_widget.h"
#include "ui/inspector/inspector_page.h"
#include "ui/message_widget.h"
#include "ui/models_page.h"
#include "ui/runs_page.h"
#include "ui/sampling_panel.h"
#include "ui/settings_page.h"
#include "ui/theme.h"

using namespace mwb;
using namespace mwb::app;


namespace {

int count_rows(const QString& database, const QString& table) {
    RunDatabase db("gui-test-counter");
    if (!db.open(database).ok()) return -1;
    QSqlQuery q(QSqlDatabase::database("gui-test-counter"));
    return q.exec("SELECT COUNT(*) FROM " + table) && q.next() ? q.value(0).toInt() : -1;
}

// Moves the Inspector's attention view to `layer`.
void inspected_layer(ui::InspectorPage* inspector, qint64 layer) {
    auto* layers = inspector->findChild<QComboBox*>("attentionLayer");
    layers->setCurrentIndex(layers->findData(layer));
}

// The id of the one chat in the history of `settings`.
qint64 chat_run(const Settings& settings) {
    qint64 id = 0;
    stored_messages(settings.database_path(), &id);
    return id;
}

}  // namespace

class GuiTest : public QObject {
    Q_OBJECT

    QTemporaryDir root_;

    QString settings_file(const QString& name) const { return root_.filePath(name + ".ini"); }

    // The Inspector's data covers the reply: every token routed in every MoE layer of the demo model, loads that
    // add up to tokens × top-k; a screenshot of each of its views.
    void check_inspector_after_reply(ui::MainWindow& window, EngineHost& engine, int generated) {
        auto* inspector = window.findChild<ui::InspectorPage*>();
        QVERIFY(inspector && inspector->isVisible());
        const app::InspectorSnapshot snapshot = engine.inspector()->snapshot();
        QVERIFY(snapshot.moe.has_value());
        QCOMPARE(int(snapshot.token_ids.size()), int(snapshot.prompt_tokens) + generated);
        const LoadMatrix load = load_matrix(snapshot.routing, snapshot.moe->n_routed_experts);
        QCOMPARE(load.tokens, qint64(snapshot.token_ids.size()) - 1);  // the last sampled token is never fed back
        for (size_t row = 0; row < load.layers.size(); ++row) {
            qint64 total = 0;
            for (int64_t e = 0; e < load.experts; ++e) total += load.count(row, e);
            QCOMPARE(total, load.tokens * snapshot.moe->experts_per_token);
        }
        const std::pair<ui::InspectorPage::View, const char*> views[] = {
            {ui::InspectorPage::View::ExpertLoad, "inspector-load"},
            {ui::InspectorPage::View::PerToken, "inspector-token"},
            {ui::InspectorPage::View::CoActivation, "inspector-coactivation"},
            {ui::InspectorPage::View::Attention, "inspector-attention"},
        };
        for (const auto& [view, name] : views) {
            inspector->show_view(view);
            inspector->refresh();
            save_screenshot(window, name);
        }
        inspector->show_view(ui::InspectorPage::View::ExpertLoad);
    }

    // At 1024 px the window keeps its width, and every message with its text and buttons lies inside the
    // transcript, which never scrolls sideways.
    static void check_fits_width(ui::MainWindow& window, ui::ChatPage* chat) {
        QCOMPARE(window.width(), 1024);
        auto* transcript = chat->findChild<QScrollArea*>("transcript");
        QTRY_COMPARE(transcript->widget()->width(), transcript->viewport()->width());
        const QRect visible = transcript->viewport()->rect();
        for (ui::MessageWidget* message : chat->message_widgets()) {
            const QRect box(message->mapTo(transcript->viewport(), QPoint(0, 0)), message->size());
            QVERIFY2(box.right() <= visible.right(), qPrintable(QStringLiteral("message ends at %1 of %2").arg(box.right()).arg(visible.right())));
            for (QWidget* child : message->findChildren<QWidget*>()) {
                if (!child->isVisible()) continue;
                const QPoint end = child->mapTo(transcript->viewport(), QPoint(child->width() - 1, 0));
                QVERIFY2(end.x() <= visible.right(), qPrintable(child->objectName() + " " + child->metaObject()->className() + " is cut off"));
            }
        }
    }

private slots:
    void initTestCase() {
        prepare_gui_test();
    }

    void firstLaunchChatsWithTheDemoModel() {
        Settings settings(settings_file("main"));
        use_test_folders(settings, root_, "data");
        TestApp app(settings, {1280, 800});
        Storage& storage = app.storage;
        EngineHost& engine = app.engine;
        ui::MainWindow& window = app.window;
        const testing::QueuedSpy& loaded = app.loaded;
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 120000);
        QVERIFY(loaded.first().first().value<LoadedModelInfo>().is_demo);
        QVERIFY(window.findChild<QLabel*>("chatModel")->text().contains("random weights"));
        QVERIFY(window.findChild<ui::ElidedLabel*>("modelStatus")->text().contains("demo"));

        // Type a message and send it with Ctrl+Return.
        ui::ChatPage* chat = window.chat_page();
        auto* sampling = chat->findChild<ui::SamplingPanel*>();
        SamplingSettings fixed = sampling->settings();
        QCOMPARE(fixed.temperature, 0.6);  // seeded from the demo's generation_config.json
        QCOMPARE(fixed.top_p, 0.95);
        QCOMPARE(fixed.max_new_tokens, 256);
        fixed.seed = 7;
        fixed.max_new_tokens = 24;
        sampling->set_settings(fixed);
        auto* input = chat->findChild<QPlainTextEdit*>("chatInput");
        input->setFocus();
        QTest::keyClicks(input, "Hello! Can you write `printf` in C?");
        QSignalSpy replied(chat, &ui::ChatPage::replyFinished);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        // The Inspector opened while the reply streams follows it live.
        window.show_page(ui::MainWindow::Page::Inspector);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 1, 60000);
        check_inspector_after_reply(window, engine, 24);
        window.show_page(ui::MainWindow::Page::Chat);
        QVERIFY(input->toPlainText().isEmpty());

        QList<ui::MessageWidget*> widgets = chat->message_widgets();
        QCOMPARE(widgets.size(), 2);
        QCOMPARE(widgets[0]->role(), QStringLiteral("user"));
        QCOMPARE(widgets[0]->text(), QStringLiteral("Hello! Can you write `printf` in C?"));
        QCOMPARE(widgets[1]->role(), QStringLiteral("assistant"));
        QVERIFY(!widgets[1]->text().isEmpty());

        // Stored: the user message, then the reply with the statistics that are shown under it.
        bool flushed = false;
        storage.flush(this, [&flushed] { flushed = true; });
        QTRY_VERIFY(flushed);
        qint64 run_id = 0;
        const QList<MessageRecord> stored = stored_messages(settings.database_path(), &run_id);
        QCOMPARE(stored.size(), 2);
        QCOMPARE(stored[0].content, QStringLiteral("Hello! Can you write `printf` in C?"));
        QCOMPARE(stored[1].content, widgets[1]->text());
        QVERIFY(stored[1].has_stats);
        QCOMPARE(stored[1].stats.generated_tokens, 24);
        QVERIFY(stored[1].stats.prompt_tokens > 10);
        QVERIFY(!stored[1].routing.empty());
        const QString shown = widgets[1]->stats_text();
        QVERIFY2(shown.contains(QStringLiteral("%1 prompt tokens").arg(stored[1].stats.prompt_tokens)), qPrintable(shown));
        QVERIFY(shown.contains(QStringLiteral("%1 generated").arg(stored[1].stats.generated_tokens)));
        QVERIFY(shown.contains("TTFT") && shown.contains("tok/s"));
        QCOMPARE(chat->current_run_id(), run_id);
        QTRY_COMPARE(chat->findChild<QListWidget*>("conversations")->count(), 1);
        // The context meter counts the conversation as the next prompt: more than the first prompt now.
        auto* context_label = chat->findChild<QLabel*>("contextLabel");
        const QRegularExpression meter(QStringLiteral("Context: ([\\d,.\\s]+) of %1 tokens").arg(QLocale().toString(2048)));
        QTRY_VERIFY(meter.match(context_label->text()).hasMatch() &&
                    QLocale().toInt(meter.match(context_label->text()).captured(1)) > stored[1].stats.prompt_tokens);
        save_screenshot(window, "chat");
        ui::apply_theme(Theme::Dark);
        QTRY_COMPARE(chat->palette().color(QPalette::Window), QApplication::palette().color(QPalette::Window));  // propagated by events
        save_screenshot(window, "chat-dark");
        ui::apply_theme(Theme::Light);
        QTRY_COMPARE(chat->palette().color(QPalette::Window), QApplication::palette().color(QPalette::Window));

        // Esc stops a long reply; what was generated is kept and marked as stopped.
        fixed.max_new_tokens = 1500;
        sampling->set_settings(fixed);
        QTest::keyClicks(input, "Now count to a thousand.");
        testing::QueuedSpy tokens(engine.worker(), &EngineWorker::tokenText);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(tokens.size() >= 1, 60000);
        QVERIFY(chat->is_generating());
        QTest::keyClick(input, Qt::Key_Escape);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 2, 60000);
        widgets = chat->message_widgets();
        QCOMPARE(widgets.size(), 4);
        QVERIFY(widgets[3]->stats_text().contains("stopped"));

        // Regenerate writes a new reply; the stopped one stays as the first of two versions.
        fixed.max_new_tokens = 24;
        sampling->set_settings(fixed);
        QVERIFY(button(widgets[3], "Regenerate"));
        QVERIFY(!button(widgets[1], "Regenerate"));  // only the last reply
        const QString stopped_reply = widgets[3]->text();
        QTest::mouseClick(button(widgets[3], "Regenerate"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 3, 60000);
        widgets = chat->message_widgets();
        QCOMPARE(widgets.size(), 4);
        QVERIFY(widgets[3]->stats_text().contains("24 generated"));
        QTRY_COMPARE(widgets[3]->alternatives_text(), QStringLiteral("2/2"));
        QCOMPARE(count_rows(settings.database_path(), "messages"), 5);

        // Edit: the message returns to the input, and nothing leaves the chat or the history until it is sent.
        QTest::mouseClick(button(widgets[2], "Edit"), Qt::LeftButton);
        QCOMPARE(input->toPlainText(), QStringLiteral("Now count to a thousand."));
        QVERIFY(chat->is_editing());
        QCOMPARE(chat->message_widgets().size(), 4);
        flushed = false;
        storage.flush(this, [&flushed] { flushed = true; });
        QTRY_VERIFY(flushed);
        QCOMPARE(count_rows(settings.database_path(), "messages"), 5);
        save_screenshot(window, "chat-editing");
        input->setPlainText("Now count to ten.");
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 4, 60000);
        QVERIFY(!chat->is_editing());
        widgets = chat->message_widgets();
        QCOMPARE(widgets.size(), 4);
        QCOMPARE(widgets[2]->text(), QStringLiteral("Now count to ten."));
        QTRY_COMPARE(widgets[2]->alternatives_text(), QStringLiteral("2/2"));
        QCOMPARE(count_rows(settings.database_path(), "messages"), 7);
        const QString edited_reply = widgets[3]->text();

        // The earlier version is one click away, with its latest reply, and the newer one too.
        QTest::mouseClick(widgets[2]->findChild<QToolButton*>("previousAlternative"), Qt::LeftButton);
        QTRY_VERIFY(chat->message_widgets().size() == 4 && chat->message_widgets()[2]->text() == "Now count to a thousand.");
        widgets = chat->message_widgets();
        QCOMPARE(widgets[2]->alternatives_text(), QStringLiteral("1/2"));
        QCOMPARE(widgets[3]->alternatives_text(), QStringLiteral("2/2"));
        QVERIFY(widgets[3]->stats_text().contains("24 generated"));
        QTest::mouseClick(widgets[3]->findChild<QToolButton*>("previousAlternative"), Qt::LeftButton);
        QTRY_VERIFY(chat->message_widgets().size() == 4 && chat->message_widgets()[3]->text() == stopped_reply);
        QTest::mouseClick(chat->message_widgets()[2]->findChild<QToolButton*>("nextAlternative"), Qt::LeftButton);
        QTRY_VERIFY(chat->message_widgets().size() == 4 && chat->message_widgets()[2]->text() == "Now count to ten.");
        QCOMPARE(chat->message_widgets()[3]->text(), edited_reply);
        widgets = chat->message_widgets();

        // A reply budget that would overflow the context is announced before sending.
        fixed.max_new_tokens = 2040;
        sampling->set_settings(fixed);
        QTRY_VERIFY(context_label->text().contains("more than the context of " + QLocale().toString(2048)));
        fixed.max_new_tokens = 24;
        sampling->set_settings(fixed);

        // Models page: the demo is listed with its card and a memory estimate.
        window.show_page(ui::MainWindow::Page::Models);
        auto* models = window.models_page()->findChild<QTreeWidget*>("modelList");
        QTRY_VERIFY(models->topLevelItemCount() >= 1);
        QSignalSpy card_shown(window.models_page(), &ui::ModelsPage::cardShown);
        models->setCurrentItem(nullptr);
        models->setCurrentItem(models->topLevelItem(0));
        QTRY_VERIFY_WITH_TIMEOUT(card_shown.size() >= 1, 30000);
        const QString card = window.models_page()->findChild<QTextBrowser*>("modelCard")->toPlainText();
        QVERIFY2(card.contains("deepseek_v3"), qPrintable(card));
        QVERIFY(card.contains("random weights"));
        QVERIFY(card.contains("16 routed, top-4 per token, 1 shared"));
        QVERIFY(window.models_page()->findChild<QLabel*>("memoryEstimate")->text().contains("KV cache"));
        save_screenshot(window, "models");

        // Runs page: the chat is listed, exports as OpenAI JSON equal to what is stored, and reopens.
        window.show_page(ui::MainWindow::Page::Runs);
        auto* table = window.runs_page()->findChild<QTableWidget*>("runsTable");
        // Listings requested before the last writes may still arrive: wait for the one with all four messages.
        QTRY_VERIFY(table->rowCount() == 1 && table->item(0, 4)->text() == QStringLiteral("4"));
        QCOMPARE(table->item(0, 0)->text(), QStringLiteral("Hello! Can you write `printf` in C?"));
        save_screenshot(window, "runs");
        table->selectRow(0);
        const QString exported = root_.filePath("chat.json");
        window.runs_page()->export_selected(true, exported);
        QTRY_VERIFY(QFileInfo::exists(exported));
        QFile file(exported);
        QVERIFY(file.open(QIODevice::ReadOnly));
        const QJsonArray messages = QJsonDocument::fromJson(file.readAll()).object()["messages"].toArray();
        const QList<MessageRecord> all = stored_messages(settings.database_path());
        QCOMPARE(messages.size(), all.size());
        for (qsizetype i = 0; i < all.size(); ++i) {
            QCOMPARE(messages[i].toObject()["role"].toString(), all[i].role);
            QCOMPARE(messages[i].toObject()["content"].toString(), all[i].content);
        }

        chat->new_chat();
        QCOMPARE(chat->message_widgets().size(), 0);
        window.runs_page()->findChild<QTableWidget*>("runsTable")->selectRow(0);
        emit window.runs_page()->openChatRequested(run_id);
        QTRY_COMPARE(chat->message_widgets().size(), 4);
        QCOMPARE(chat->message_widgets()[1]->stats_text(), shown);

        // The reopened chat's last reply brings its stored expert load back to the Inspector.
        const MessageRecord& last_reply = all.last();
        QCOMPARE(last_reply.role, QStringLiteral("assistant"));
        QTRY_VERIFY(engine.inspector()->snapshot().stored_load.has_value());
        const LoadMatrix reopened = *engine.inspector()->snapshot().stored_load;
        QCOMPARE(int(reopened.layers.size()), int(last_reply.routing.layers.size()));
        for (qsizetype row = 0; row < last_reply.routing.layers.size(); ++row)
            for (int e = 0; e < last_reply.routing.experts; ++e)
                QCOMPARE(reopened.count(size_t(row), e), int64_t(last_reply.routing.counts[row][e]));
        window.show_page(ui::MainWindow::Page::Inspector);
        auto* inspector = window.findChild<ui::InspectorPage*>();
        inspector->refresh();
        QVERIFY2(inspector->status_text().startsWith("From the history"), qPrintable(inspector->status_text()));
        save_screenshot(window, "inspector-reopened");
    }

    // A reply in flight when the app quits is kept as "interrupted"; one in flight when the process is killed is
    // kept up to its last batch (the history's files as a kill leaves them, copied between two writes). The chat
    // reopens at launch with its sampling, offers Continue and Regenerate, and refuses a message that cannot fit.
    void interruptedRepliesSurviveQuitAndKill() {
        Settings settings(settings_file("interrupted"));
        use_test_folders(settings, root_, "interrupted-data");
        const QString database = settings.database_path();
        const QString snapshot = root_.filePath("killed.sqlite");
        SamplingSettings long_reply;
        long_reply.seed = 11;
        long_reply.max_new_tokens = 1500;
        {
            TestApp app(settings, {1024, 700});
            Storage& storage = app.storage;
            ui::MainWindow& window = app.window;
            const testing::QueuedSpy& loaded = app.loaded;
            window.start();
            QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 120000);
            ui::ChatPage* chat = window.chat_page();
            chat->findChild<ui::SamplingPanel*>()->set_settings(long_reply);
            auto* input = chat->findChild<QPlainTextEdit*>("chatInput");
            input->setPlainText("Count to a thousand.");
            QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
            // The reply is in the history while it streams.
            QTRY_VERIFY_WITH_TIMEOUT(stored_messages(database).size() == 2 && !stored_messages(database)[1].complete &&
                                         stored_messages(database)[1].content.size() > 40,
                                     60000);
            QVERIFY(chat->is_generating());
            storage.post([&](RunDatabase&) {
                QFile::copy(database, snapshot);
                QFile::copy(database + "-wal", snapshot + "-wal");
            });
            wait_for_storage(storage);
            window.close();  // what Ctrl+Q does; the window, the engine and the storage then end in that order
        }
        QList<MessageRecord> stored = stored_messages(database);
        QCOMPARE(stored.size(), 2);
        QVERIFY(!stored[1].complete);
        const QString at_quit = stored[1].content;

        // Now as if killed at the snapshot.
        for (const char* suffix : {"", "-wal", "-shm"}) QFile::remove(database + suffix);
        QVERIFY(QFile::copy(snapshot, database));
        QVERIFY(QFile::copy(snapshot + "-wal", database + "-wal"));
        stored = stored_messages(database);
        QCOMPARE(stored.size(), 2);
        QVERIFY(!stored[1].complete);
        const QString at_kill = stored[1].content;
        QVERIFY(at_kill.size() > 40);
        QVERIFY(at_quit.startsWith(at_kill));

        TestApp app(settings, {1024, 700});
        Storage& storage = app.storage;
        ui::MainWindow& window = app.window;
        const testing::QueuedSpy& loaded = app.loaded;
        window.start();
        ui::ChatPage* chat = window.chat_page();
        QTRY_COMPARE(chat->message_widgets().size(), 2);
        ui::MessageWidget* reply = chat->message_widgets()[1];
        QVERIFY(reply->is_interrupted());
        QCOMPARE(reply->text(), at_kill);
        QTRY_VERIFY_WITH_TIMEOUT(loaded.size() >= 1, 120000);
        QTRY_VERIFY(button(reply, "Continue") && button(reply, "Regenerate"));
        auto* sampling = chat->findChild<ui::SamplingPanel*>();
        QCOMPARE(sampling->settings().max_new_tokens, 1500);  // the chat's own sampling, not the model's defaults
        QCOMPARE(sampling->settings().seed, quint64(11));
        check_fits_width(window, chat);
        if (QTest::currentTestFailed()) return;
        QVERIFY(!chat->findChild<QWidget*>("chatSidePanel")->isVisible());  // a narrow window leaves it to the conversation
        save_screenshot(window, "chat-interrupted-1024x700");

        // Continue goes on from the interrupted text, in the same message.
        SamplingSettings short_reply = long_reply;
        short_reply.max_new_tokens = 8;
        sampling->set_settings(short_reply);
        QSignalSpy replied(chat, &ui::ChatPage::replyFinished);
        QTest::mouseClick(button(reply, "Continue"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 1, 60000);
        QCOMPARE(chat->message_widgets().size(), 2);
        QVERIFY(!reply->is_interrupted());
        QVERIFY(reply->text().startsWith(at_kill) && reply->text().size() > at_kill.size());
        wait_for_storage(storage);
        stored = stored_messages(database);
        QCOMPARE(stored.size(), 2);
        QVERIFY(stored[1].complete);
        QCOMPARE(stored[1].content, reply->text());
        QCOMPARE(stored[1].stats.generated_tokens, 8);

        // A message that cannot fit is refused with the numbers; it goes back to the input and nothing is stored.
        const int rows = count_rows(database, "messages");
        auto* input = chat->findChild<QPlainTextEdit*>("chatInput");
        const QString too_long = QString("prime numbers ").repeated(1200);
        input->setPlainText(too_long);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        auto* error = chat->findChild<QLabel*>("chatError");
        QTRY_VERIFY_WITH_TIMEOUT(error->isVisible(), 30000);
        QVERIFY2(error->text().contains("the context holds " + QLocale().toString(2048)), qPrintable(error->text()));
        QCOMPARE(input->toPlainText(), too_long.trimmed());
        QTRY_COMPARE(chat->message_widgets().size(), 2);
        wait_for_storage(storage);
        QCOMPARE(count_rows(database, "messages"), rows);

        // With "leave out the oldest messages" it is answered, and the reply says what was left out: here two
        // messages of ~1,200 tokens each cannot both fit, so both earlier turns (four messages) go.
        const QString half = QString("prime numbers ").repeated(600);
        input->setPlainText(half);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 2, 60000);
        QCOMPARE(chat->message_widgets().size(), 4);
        QCOMPARE(chat->message_widgets()[3]->note_text(), QString());
        settings.set_context_overflow(ContextOverflow::DropOldestTurns);
        input->setPlainText(half);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 3, 60000);
        QCOMPARE(chat->message_widgets().size(), 6);
        QVERIFY2(chat->message_widgets()[5]->note_text().contains("Left out the 4 oldest messages"),
                 qPrintable(chat->message_widgets()[5]->note_text()));
        wait_for_storage(storage);
        QCOMPARE(count_rows(database, "messages"), rows + 4);  // left out of the prompt, not of the history
        check_fits_width(window, chat);
        if (QTest::currentTestFailed()) return;
        save_screenshot(window, "chat-overflow-1024x700");
        // Shown on demand, the side panel still leaves every message whole.
        chat->findChild<QToolButton*>("sidePanelToggle")->click();
        QVERIFY(chat->findChild<QWidget*>("chatSidePanel")->isVisible());
        QTRY_VERIFY(chat->findChild<QWidget*>("chatSidePanel")->width() >= chat->findChild<ui::SamplingPanel*>()->sizeHint().width());
        check_fits_width(window, chat);
        if (QTest::currentTestFailed()) return;
        save_screenshot(window, "chat-side-panel-1024x700");
    }

    // `moe-workbench DIR` with a folder that fails to load: the error is shown, the usual model is loaded instead,
    // and the entry says it failed (not "ready") and can be removed. A folder without a tokenizer gets one from
    // another folder and loads. The card's context comes from the model's config.json, not from another model.
    void modelsPageHandlesFailuresTokenizersAndContext() {
        Settings settings(settings_file("models"));
        use_test_folders(settings, root_, "models-data");
        // Two copies of a demo model: one whose config.json lies about the hidden size (listed as ready, fails to
        // load), one without tokenizer files and a context of 1024 in its config.json.
        const QString source = root_.filePath("models-source");
        QVERIFY(ensure_demo_model(source, testing::small_demo_recipe()).ok());
        auto copy_model = [&](const QString& name, const std::function<void(QJsonObject&)>& edit, bool with_tokenizer) {
            const QString target = root_.filePath(name);
            QDir().mkpath(target);
            for (const QString& file : QDir(source).entryList(QDir::Files)) {
                if (file == "demo_model.json" || file == "config.json" || (!with_tokenizer && file.startsWith("tokenizer"))) continue;
                if (!QFile::copy(QDir(source).filePath(file), QDir(target).filePath(file))) qFatal("copy");
            }
            QFile in(QDir(source).filePath("config.json"));
            in.open(QIODevice::ReadOnly);
            QJsonObject config = QJsonDocument::fromJson(in.readAll()).object();
            edit(config);
            QFile out(QDir(target).filePath("config.json"));
            out.open(QIODevice::WriteOnly);
            out.write(QJsonDocument(config).toJson());
            return target;
        };
        const QString lying = copy_model("lying-model", [](QJsonObject& c) { c["hidden_size"] = 96; }, true);
        const QString bare = copy_model("bare-model", [](QJsonObject& c) { c["max_position_embeddings"] = 1024; }, false);

        TestApp app(settings, {1024, 700});
        ui::MainWindow& window = app.window;
        testing::QueuedSpy failed(app.engine.worker(), &EngineWorker::loadFailed);
        window.start(lying);
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        QCOMPARE(failed.size(), 1);
        QVERIFY(app.loaded.first().first().value<LoadedModelInfo>().is_demo);
        auto* notice = window.chat_page()->findChild<QLabel*>("notice");
        QVERIFY(notice->isVisible());
        QVERIFY2(notice->text().contains("lying-model") && notice->text().contains("hidden_size"), qPrintable(notice->text()));
        QVERIFY(window.chat_page()->findChild<QPushButton*>("sendButton")->isEnabled());

        ui::ModelsPage* models = window.models_page();
        window.show_page(ui::MainWindow::Page::Models);
        auto* list = models->findChild<QTreeWidget*>("modelList");
        auto item_of = [list](const QString& path) -> QTreeWidgetItem* {
            for (int i = 0; i < list->topLevelItemCount(); ++i)
                if (list->topLevelItem(i)->data(0, Qt::UserRole).toString() == path) return list->topLevelItem(i);
            return nullptr;
        };
        QTRY_VERIFY(item_of(lying));
        QVERIFY2(item_of(lying)->text(3).startsWith("failed to load"), qPrintable(item_of(lying)->text(3)));
        save_screenshot(window, "models-failed-1024x700");
        models->select_model(lying);
        QVERIFY(models->findChild<QPushButton*>("removeModel")->isEnabled());
        QSignalSpy scanned(models, &ui::ModelsPage::scanFinished);
        QTest::mouseClick(models->findChild<QPushButton*>("removeModel"), Qt::LeftButton);
        QTRY_VERIFY(scanned.size() >= 1);
        QVERIFY(!item_of(lying));
        QVERIFY(!settings.model_folders().contains(lying));
        QVERIFY(QFileInfo::exists(QDir(lying).filePath("config.json")));  // only the list changed

        // A folder without a tokenizer says so, takes one from another folder, and loads with it.
        models->add_folder(bare);
        QTRY_VERIFY(item_of(bare));
        QVERIFY(item_of(bare)->text(3).contains("tokenizer"));
        QVERIFY(models->findChild<QPushButton*>("chooseTokenizer")->isEnabled());
        models->set_tokenizer_folder(bare, source);
        QTRY_VERIFY(item_of(bare) && item_of(bare)->text(3) == "ready");
        QCOMPARE(models->selected_path(), bare);
        // The card: the context of its own config.json, although the demo was last loaded with 512.
        settings.set_context_length(settings.demo_model_directory(), 512);
        QSignalSpy card_shown(models, &ui::ModelsPage::cardShown);
        list->setCurrentItem(nullptr);
        models->select_model(bare);
        QTRY_VERIFY_WITH_TIMEOUT(card_shown.size() >= 1, 30000);
        QVERIFY2(models->findChild<QTextBrowser*>("modelCard")->toPlainText().contains(QLocale().toString(1024) + " tokens"),
                 qPrintable(models->findChild<QTextBrowser*>("modelCard")->toPlainText()));
        QCOMPARE(models->findChild<QSpinBox*>()->value(), 1024);
        save_screenshot(window, "models-tokenizer-1024x700");
        QTest::mouseClick(models->findChild<QPushButton*>("loadModelButton"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 2, 60000);
        const auto info = app.loaded.at(1).first().value<LoadedModelInfo>();
        QCOMPARE(info.path, bare);
        QCOMPARE(info.context_length, 1024);

        // Settings at 1024 px: number fields keep their natural width instead of stretching across the page.
        window.show_page(ui::MainWindow::Page::Settings);
        const QList<QAbstractSpinBox*> fields = window.findChild<ui::SettingsPage*>()->findChildren<QAbstractSpinBox*>();
        QVERIFY(!fields.isEmpty());
        for (QAbstractSpinBox* field : fields) QVERIFY2(field->width() < 200, qPrintable(QString::number(field->width())));
        save_screenshot(window, "settings-1024x700");
    }

    // Inspect re-runs any message of a conversation, reopened ones included: its attention equals what a live
    // capture saw for the same prompt, another layer is captured on demand, the grid holds the captured rows and
    // zooms, and the Inspector's labels, legend and exports say what they show.
    void inspectorReRunsAnyMessage() {
        Settings settings(settings_file("inspect"));
        use_test_folders(settings, root_, "inspect-data");
        TestApp app(settings, {1280, 800});
        ui::MainWindow& window = app.window;
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        ui::ChatPage* chat = window.chat_page();
        auto* inspector = window.findChild<ui::InspectorPage*>();
        SamplingSettings sampling;
        sampling.seed = 5;
        sampling.max_new_tokens = 12;
        chat->findChild<ui::SamplingPanel*>()->set_settings(sampling);

        // A reply generated with the attention view open: layer 0 is captured live.
        window.show_page(ui::MainWindow::Page::Inspector);
        inspector->show_view(ui::InspectorPage::View::Attention);
        QCOMPARE(inspector->attention_layer(), 0);
        chat->findChild<QPlainTextEdit*>("chatInput")->setPlainText("Which expert handles this?");
        QSignalSpy replied(chat, &ui::ChatPage::replyFinished);
        chat->send();
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 1, 60000);
        const InspectorSnapshot live = app.engine.inspector()->snapshot();
        QVERIFY(live.attention.count(0));
        const int64_t prompt_tokens = live.prompt_tokens;

        // Inspect the question: the same prompt, re-run, gives the same attention rows.
        testing::QueuedSpy inspected(app.engine.worker(), &EngineWorker::inspectionFinished);
        window.show_page(ui::MainWindow::Page::Chat);
        QTest::mouseClick(button(chat->message_widgets()[0], "Inspect"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(inspected.size() >= 1, 30000);
        QCOMPARE(inspected.at(0).at(1).toInt(), int(prompt_tokens));
        const InspectorSnapshot question = app.engine.inspector()->snapshot();
        QCOMPARE(question.token_ids, std::vector<int32_t>(live.token_ids.begin(), live.token_ids.begin() + prompt_tokens));
        QCOMPARE(int64_t(question.attention.at(0).rows.size()), prompt_tokens);
        for (int64_t position = 0; position < prompt_tokens; ++position) {
            const std::vector<float>& a = question.attention.at(0).rows.at(position);
            const std::vector<float>& b = live.attention.at(0).rows.at(position);
            QCOMPARE(a.size(), b.size());
            for (size_t i = 0; i < a.size(); ++i) QVERIFY(std::fabs(a[i] - b[i]) <= 1e-5f);
        }
        QVERIFY(window.findChild<ui::InspectorPage*>()->isVisible());
        inspector->refresh();
        auto* detail = inspector->findChild<ui::HeatmapWidget*>("attentionDetail");
        QCOMPARE(detail->rows(), int(prompt_tokens));
        QCOMPARE(detail->columns(), int(prompt_tokens));
        QVERIFY(detail->row_labels().first().startsWith("0 "));
        QVERIFY(inspector->status_text().contains("Message 1"));

        // Another layer is captured when the view moves to it.
        inspected_layer(inspector, 1);
        QTRY_VERIFY_WITH_TIMEOUT(inspected.size() >= 2, 30000);
        QVERIFY(app.engine.inspector()->snapshot().attention.count(1));

        // The reply of a reopened chat: the conversation before it, then its text.
        window.show_page(ui::MainWindow::Page::Chat);
        chat->new_chat();
        chat->open_run(chat_run(settings));
        QTRY_VERIFY(chat->message_widgets().size() == 2 && button(chat->message_widgets()[1], "Inspect"));
        QTest::mouseClick(button(chat->message_widgets()[1], "Inspect"), Qt::LeftButton);
        QTRY_VERIFY_WITH_TIMEOUT(inspected.size() >= 3, 30000);
        const InspectorSnapshot reply = app.engine.inspector()->snapshot();
        QCOMPARE(reply.prompt_tokens, prompt_tokens);
        QVERIFY(int64_t(reply.token_ids.size()) > prompt_tokens);
        QCOMPARE(int64_t(reply.attention.at(1).rows.size()), int64_t(reply.token_ids.size()));
        inspector->refresh();
        QVERIFY2(inspector->status_text().contains("Message 2 (reply)"), qPrintable(inspector->status_text()));
        QVERIFY(inspector->status_text().contains(QStringLiteral("%1 prompt").arg(prompt_tokens)));

        // Zoom: a fixed size per token makes the grid scroll instead of squeezing it.
        inspector->findChild<QComboBox*>("attentionZoom")->setCurrentIndex(4);  // 24 px per token
        QTRY_VERIFY(detail->height() >= detail->rows() * 24);
        save_screenshot(window, "inspector-inspected");

        // The per-token list explains its marker; the flow table's headers are whole.
        QVERIFY(inspector->findChild<QLabel*>("tokenLegend")->text().contains("◂"));
        inspector->show_view(ui::InspectorPage::View::CoActivation);
        inspector->refresh();
        auto* flow = inspector->findChild<QTableWidget*>("flowTable");
        for (int c = 0; c < flow->columnCount(); ++c) {
            const QString header = flow->horizontalHeaderItem(c)->text();
            QVERIFY2(flow->horizontalHeader()->sectionSize(c) >= flow->horizontalHeader()->fontMetrics().horizontalAdvance(header), qPrintable(header));
        }
        QTRY_VERIFY(flow->viewport()->width() >= flow->horizontalHeader()->length());  // nothing hidden to the right
        save_screenshot(window, "inspector-flow");

        // Exports start in the home folder and say where the file went.
        const QString exported = root_.filePath("exported-load.csv");
        QTimer::singleShot(0, [&] {
            auto* dialog = qobject_cast<QFileDialog*>(QApplication::activeModalWidget());
            if (!dialog) return;
            QCOMPARE(dialog->directory().absolutePath(), QDir::homePath());
            dialog->selectFile(exported);
            static_cast<QDialog*>(dialog)->accept();
        });
        for (QAction* action : inspector->findChildren<QAction*>())
            if (action->text().startsWith("Expert load as CSV")) action->trigger();
        QVERIFY(QFileInfo::exists(exported));
        QVERIFY2(inspector->status_text().contains("Saved") && inspector->status_text().contains("exported-load.csv"),
                 qPrintable(inspector->status_text()));
    }

    // DeepSeek's special tokens (full-width bars, lower blocks) and Chinese text are drawn with real glyphs from
    // the installed fonts (the app font, then fontconfig's fallback), never the empty box of glyph 0.
    void specialTokensAndChineseHaveGlyphs() {
        for (const QString& text : {QStringLiteral("<｜begin▁of▁sentence｜>"), QStringLiteral("<｜Assistant｜>"), QStringLiteral("你好，世界")}) {
            QTextLayout layout(text, QApplication::font());
            layout.beginLayout();
            layout.createLine();
            layout.endLayout();
            int glyphs = 0;
            for (const QGlyphRun& run : layout.glyphRuns()) {
                for (quint32 glyph : run.glyphIndexes()) {
                    QVERIFY2(glyph != 0, qPrintable(text + " needs a font that " + run.rawFont().familyName() + " is not"));
                    ++glyphs;
                }
            }
            QCOMPARE(glyphs, int(text.size()));
        }
    }

    void reasoningIsShownAsACollapsibleSectionWhileStreaming() {
        ui::MessageWidget message("assistant");
        message.show();
        message.set_streaming(true);
        message.append_text("<think>\nThe user wants ");
        QVERIFY(message.thinking_visible());
        auto* toggle = message.findChild<QToolButton*>("thinkingToggle");
        QCOMPARE(toggle->text(), QStringLiteral("Thinking…"));
        QVERIFY(toggle->isChecked());  // open while the model reasons
        QCOMPARE(message.thinking_text(), QStringLiteral("The user wants"));
        message.append_text("code.\n</think>\n\n```c\nprintf(\"hi\");\n```");
        message.set_streaming(false);
        QCOMPARE(toggle->text(), QStringLiteral("Thinking"));
        QCOMPARE(message.thinking_text(), QStringLiteral("The user wants code."));
        QCOMPARE(message.answer_text().trimmed(), QStringLiteral("printf(\"hi\");"));
        toggle->click();
        QVERIFY(!message.findChild<QTextBrowser*>("thinking")->isVisible());
    }

    void crashDuringModelLoadIsNotRepeated() {
        Settings settings(settings_file("crashed"));
        use_test_folders(settings, root_, "crashed-data");
        settings.begin_model_load("/models/DeepSeek-V3");  // the previous session died here
        Storage storage;
        EngineHost engine;
        ui::AppContext context{settings, storage, engine, testing::small_demo_recipe()};
        ui::MainWindow window(context);
        window.show();
        testing::QueuedSpy load_started(engine.worker(), &EngineWorker::loadStarted);
        window.start();
        auto* notice = window.chat_page()->findChild<QLabel*>("notice");
        QVERIFY(notice->isVisible());
        QVERIFY(notice->text().contains("/models/DeepSeek-V3"));
        QVERIFY(settings.model_load_in_progress().isEmpty());
        QVERIFY(!window.chat_page()->findChild<QPushButton*>("sendButton")->isEnabled());
        // The engine handles requests in order: this one fails for want of a model, so no load was queued before.
        testing::QueuedSpy failed(engine.worker(), &EngineWorker::generationFailed);
        engine.generate({{"user", "hi"}}, {});
        QTRY_VERIFY_WITH_TIMEOUT(failed.size() >= 1, 10000);
        QVERIFY(failed.first().at(1).toString().contains("No model is loaded"));
        QCOMPARE(load_started.size(), 0);
    }

    void windowSizeIsRemembered() {
        Settings settings(settings_file("layout"));
        Storage storage;
        EngineHost engine;
        ui::AppContext context{settings, storage, engine, testing::small_demo_recipe()};
        {
            ui::MainWindow window(context);
            window.show();
            QVERIFY(QTest::qWaitForWindowExposed(&window));
            window.resize(1100, 720);
            QTRY_COMPARE(window.size(), QSize(1100, 720));
            window.close();
        }
        ui::MainWindow reopened(context);
        QCOMPARE(reopened.size(), QSize(1100, 720));
    }
};

QTEST_MAIN(GuiTest)
#include "gui_test.moc"
