// The Server page and Chat's remote-endpoint mode, offscreen: the app starts its own OpenAI-compatible server
// on the demo model, Chat talks to it over HTTP like any client, the reply equals the local engine's, it is
// stored with its statistics, the request shows in the server's table; unreachable endpoints and wrong keys
// are reported plainly.
#include <QtTest>

#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>

#include "gui_support.h"
#include "ui/chat_page.h"
#include "ui/sampling_panel.h"
#include "ui/server_page.h"

class ServerGuiTest : public QObject {
    Q_OBJECT

    QTemporaryDir root_;
    QString settings_file(const QString& name) const { return root_.filePath(name + ".ini"); }

    // Sends `text` from Chat, greedy and short, and waits for the reply.
    static QString ask(ui::ChatPage* chat, const QString& text, int max_tokens) {
        auto* sampling = chat->findChild<ui::SamplingPanel*>();
        SamplingSettings fixed = sampling->settings();
        fixed.temperature = 0;
        fixed.max_new_tokens = max_tokens;
        fixed.seed = 11;
        sampling->set_settings(fixed);
        auto* input = chat->findChild<QPlainTextEdit*>("chatInput");
        input->setPlainText(text);
        QSignalSpy replied(chat, &ui::ChatPage::replyFinished);
        auto* error = chat->findChild<QLabel*>("chatError");
        chat->send();
        if (!QTest::qWaitFor([&] { return replied.size() >= 1 || error->isVisible(); }, 60000)) return "(no reply)";
        return replied.isEmpty() ? QString() : chat->message_widgets().last()->text();
    }

private slots:
    void initTestCase() { prepare_gui_test(); }

    void chatTalksToTheAppsOwnServer() {
        Settings settings(settings_file("server"));
        use_test_folders(settings, root_, "data");
        TestApp app(settings, {1280, 800});
        ui::MainWindow& window = app.window;
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        ui::ChatPage* chat = window.chat_page();

        // The local engine's answer first: the truth the server's must equal.
        const QString local = ask(chat, "What is a mixture of experts?", 16);
        QVERIFY(!local.isEmpty());

        // Start the server on any free port, with a key.
        window.show_page(ui::MainWindow::Page::Server);
        ui::ServerPage* page = window.server_page();
        page->set_port(0);
        auto* key = page->findChild<QLineEdit*>("serverApiKey");
        key->setText("sesame-test-key");
        QSignalSpy started(&window.server_host(), &app::ServerHost::started);
        page->findChild<QPushButton*>("startServer")->click();
        QTRY_VERIFY_WITH_TIMEOUT(started.size() == 1, 60000);
        const QString url = started.first().first().toString();
        QVERIFY(url.startsWith("http://127.0.0.1:"));
        QVERIFY(page->findChild<QLabel*>("serverAddress")->text().contains(url));

        // Chat through it: same conversation, new chat, same greedy settings.
        app::RemoteEndpoint endpoint;
        endpoint.base_url = url;
        endpoint.api_key = "sesame-test-key";
        chat->new_chat();
        window.chat_with_endpoint(endpoint);
        QVERIFY(chat->is_remote());
        QVERIFY(window.findChild<QLabel*>("chatModel")->text().contains("remote"));
        const QString remote = ask(chat, "What is a mixture of experts?", 16);
        QCOMPARE(remote, local);
        save_screenshot(window, "chat-remote");

        // Stored like a local reply, with its statistics and without routing.
        wait_for_storage(app.storage);
        const QList<MessageRecord> stored = stored_messages(settings.database_path(), nullptr, chat->current_run_id());
        QCOMPARE(stored.size(), 2);
        QCOMPARE(stored[1].content, remote);
        QVERIFY(stored[1].has_stats);
        QCOMPARE(stored[1].stats.generated_tokens, 16);
        QVERIFY(stored[1].stats.prompt_tokens > 5);
        QVERIFY(stored[1].routing.empty());
        QVERIFY(chat->message_widgets().last()->stats_text().contains("tok/s"));

        // The server's table shows the request, finished.
        window.show_page(ui::MainWindow::Page::Server);
        QTableWidget* table = page->requests_table();
        QTRY_VERIFY(table->rowCount() >= 1 && table->item(0, 4)->text() == "done");
        QCOMPARE(table->item(0, 6)->text(), QString("16"));
        QTRY_VERIFY(page->findChild<QPlainTextEdit*>("serverLog")->toPlainText().contains("/v1/chat/completions"));
        save_screenshot(window, "server");

        // A wrong key and an address where nothing listens are told plainly.
        endpoint.api_key = "wrong";
        window.chat_with_endpoint(endpoint);
        ask(chat, "Hello?", 4);
        auto* error = chat->findChild<QLabel*>("chatError");
        QTRY_VERIFY(error->isVisible());
        QVERIFY2(error->text().contains("401") && error->text().contains("not valid"), qPrintable(error->text()));
        endpoint.base_url = "http://127.0.0.1:9";
        window.chat_with_endpoint(endpoint);
        ask(chat, "Hello?", 4);
        QTRY_VERIFY2(error->text().contains("cannot reach"), qPrintable(error->text()));
        // Refused twice: the conversation is as stored and the unsent message is back in the input box.
        QTRY_COMPARE(chat->message_widgets().size(), 2);
        QCOMPARE(chat->message_widgets().last()->text(), remote);
        QCOMPARE(chat->findChild<QPlainTextEdit*>("chatInput")->toPlainText(), QString("Hello?"));
        save_screenshot(window, "chat-remote-unreachable");

        QSignalSpy stopped(&window.server_host(), &app::ServerHost::stopped);
        window.server_host().stop();
        QVERIFY(!window.server_host().running());
        QTRY_COMPARE(stopped.size(), 1);
        QVERIFY(page->findChild<QLabel*>("serverAddress")->text().contains("Not running"));
    }
};

QTEST_MAIN(ServerGuiTest)
#include "server_gui_test.moc"
