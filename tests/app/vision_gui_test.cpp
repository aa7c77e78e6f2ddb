// Images in Chat offscreen: the demo model cannot see, so attaching is refused with a message that says so; a
// DeepSeek-VL model (the dsvl-tiny fixture with a small byte-level tokenizer whose token 511 is the image
// placeholder) takes the fixture picture with a question, shows it in the conversation and answers; the
// Inspector shows where the reply looked in the picture; the history keeps the picture in the image store.
// Screenshots: chat-no-vision, chat-image-attached, chat-image-answer, inspector-image-attention.
#include <QtTest>

#include <QDir>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "app/services/image_store.h"
#include "gui_support.h"
#include "tests/support/byte_tokenizer.h"
#include "ui/attachment_bar.h"
#include "ui/chat_page.h"
#include "ui/inspector/image_attention_view.h"
#include "ui/inspector/inspector_page.h"

namespace {

const QString kFixture = QStringLiteral(MWB_TEST_DATA "/models/dsvl-tiny");

void write_text(const QString& path, const std::string& text) {
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(QByteArray::fromStdString(text));
}

// dsvl-tiny with a tokenizer: bytes are ids 0-255 (without merges), "<image_placeholder>" is 511 and "</s>" 2,
// under a plain "User: … Assistant:" template in the manner of DeepSeek-VL's conversations.
void make_vision_model(const QString& folder) {
    QVERIFY(QDir().mkpath(folder));
    for (const char* name : {"config.json", "model.safetensors", "preprocessor_config.json"})
        QVERIFY(QFile::copy(kFixture + "/" + name, folder + "/" + name));
    const nlohmann::json tokenizer = mwb::testing::byte_level_tokenizer({{2, "</s>"}, {511, "<image_placeholder>"}});
    write_text(folder + "/tokenizer.json", tokenizer.dump());
    const nlohmann::json config = {
        {"eos_token", "</s>"},
        {"chat_template", "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n\n{% else %}Assistant: "
                          "{{ m['content'] }}</s>{% endif %}{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"}};
    write_text(folder + "/tokenizer_config.json", config.dump());
}

}  // namespace

class VisionGuiTest : public QObject {
    Q_OBJECT

    QTemporaryDir root_;

private slots:
    void initTestCase() { prepare_gui_test(); }

    void asksAboutAnAttachedImage() {
        Settings settings(root_.filePath("vision.ini"));
        use_test_folders(settings, root_, "data");
        TestApp app(settings, {1280, 800});
        ui::MainWindow& window = app.window;
        window.start();
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 1, 120000);
        ui::ChatPage* chat = window.chat_page();
        auto* bar = chat->findChild<ui::AttachmentBar*>();
        QVERIFY(bar);

        // The demo model is text only.
        QVERIFY(!chat->findChild<QPushButton*>("attachImage")->isEnabled());
        QSignalSpy status(bar, &ui::AttachmentBar::statusMessage);
        bar->add_files({kFixture + "/test_image.png"});
        QVERIFY(bar->files().isEmpty());
        QVERIFY(!status.isEmpty() && status.first().first().toString().contains("cannot see images"));
        QCOMPARE(chat->findChild<QLabel*>("attachmentHint")->text(), QString("This model cannot see images"));
        save_screenshot(window, "chat-no-vision");

        const QString model = root_.filePath("dsvl-chat");
        make_vision_model(model);
        window.load_model(model, 512, false);
        QTRY_VERIFY_WITH_TIMEOUT(app.loaded.size() >= 2, 120000);
        QVERIFY(app.loaded.at(1).at(0).value<LoadedModelInfo>().sees_images);
        QVERIFY(chat->findChild<QPushButton*>("attachImage")->isEnabled());
        // The prompt's size counts the image as its 16 tokens (57, as the reply's statistics say below).
        app::testing::QueuedSpy counted(app.engine.worker(), &EngineWorker::tokensCounted);
        const quint64 count_id =
            app.engine.countTokens({ChatMessage{"user", "What is in the picture?", {kFixture + "/test_image.png"}}});
        QTRY_VERIFY(std::any_of(counted.begin(), counted.end(), [&](const QVariantList& c) { return c.at(0).toULongLong() == count_id; }));
        for (const QVariantList& c : counted)
            if (c.at(0).toULongLong() == count_id) QCOMPARE(c.at(1).toInt(), 57);
        bar->add_files({kFixture + "/test_image.png", root_.filePath("vision.ini")});  // the second is no image
        QCOMPARE(bar->files(), QStringList{kFixture + "/test_image.png"});
        auto* input = chat->findChild<QPlainTextEdit*>("chatInput");
        input->setFocus();
        QTest::keyClicks(input, "What is in the picture?");
        save_screenshot(window, "chat-image-attached");
        QSignalSpy replied(chat, &ui::ChatPage::replyFinished);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        QTRY_VERIFY_WITH_TIMEOUT(replied.size() >= 1, 60000);
        QVERIFY(bar->files().isEmpty());
        const QList<ui::MessageWidget*> widgets = chat->message_widgets();
        QCOMPARE(widgets.size(), 2);
        QCOMPARE(widgets[0]->image_count(), 1);
        QVERIFY2(widgets[1]->note_text().isEmpty(), qPrintable(widgets[1]->note_text()));
        // "User: " + placeholder + question + "\n\nAssistant:": 6 + 16 image tokens + 23 + 12 bytes.
        QVERIFY2(widgets[1]->stats_text().startsWith("57 prompt tokens"), qPrintable(widgets[1]->stats_text()));
        save_screenshot(window, "chat-image-answer");

        // Where the reply's first token looked: the Inspector re-runs the conversation with the image.
        app::testing::QueuedSpy inspected(app.engine.worker(), &EngineWorker::inspectionFinished);
        QToolButton* inspect = button(widgets[1], "Inspect");
        QVERIFY(inspect);
        inspect->click();
        QTRY_VERIFY_WITH_TIMEOUT(inspected.size() == 1, 60000);
        ui::InspectorPage* inspector = window.inspector_page();
        inspector->refresh();
        ui::ImageAttentionView* view = inspector->image_attention_view();
        QTRY_VERIFY(!view->overlay().isNull());
        const InspectorSnapshot snapshot = app.engine.inspector()->snapshot();
        QCOMPARE(snapshot.images.size(), size_t(1));
        QCOMPARE(snapshot.images[0].positions.size(), size_t(16));
        QCOMPARE(snapshot.images[0].positions.front(), int64_t(6));  // after "User: "
        const std::vector<float> mean = image_attention(snapshot, inspector->attention_layer(), snapshot.prompt_tokens - 1, snapshot.images[0], -1);
        QCOMPARE(mean.size(), size_t(16));
        for (float w : mean) QVERIFY(w > 0 && w < 1);
        QVERIFY(view->export_png(QStringLiteral(MWB_TEST_OUTPUT "/inspector-image-attention-export.png")));
        save_screenshot(window, "inspector-image-attention");

        // The history keeps the picture by its hash in the image store.
        wait_for_storage(app.storage);
        const QList<MessageRecord> stored = stored_messages(settings.database_path());
        QVERIFY(stored.size() == 2);
        QCOMPARE(stored[0].images.size(), 1);
        const QString kept = ImageStore(settings.image_directory()).path(stored[0].images[0]);
        QVERIFY(!kept.isEmpty());
        QFile original(kFixture + "/test_image.png"), copy(kept);
        QVERIFY(original.open(QIODevice::ReadOnly) && copy.open(QIODevice::ReadOnly));
        QCOMPARE(copy.readAll(), original.readAll());
    }
};

QTEST_MAIN(VisionGuiTest)
#include "vision_gui_test.moc"
