// What the GUI suites share: the app put together as main() does it, screenshots, a message's buttons, and
// waiting for the history's writes.
#pragma once

#include <QApplication>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QToolButton>

#include "app/services/run_database.h"
#include "test_support.h"
#include "ui/main_window.h"
#include "ui/message_widget.h"

using namespace mwb;
using namespace mwb::app;

namespace {

// Test paths for QStandardPaths and the font every screenshot is drawn with.
inline void prepare_gui_test() {
    QStandardPaths::setTestModeEnabled(true);
    QFont font("DejaVu Sans");
    font.setPointSize(9);
    QApplication::setFont(font);
}

// The history, the demo model and the Hugging Face cache of a test under `root`, in a folder of its own.
inline void use_test_folders(Settings& settings, const QTemporaryDir& root, const QString& data) {
    settings.set_data_directory(root.filePath(data));
    settings.set_huggingface_hub_directory(root.filePath("hub"));
}

inline void save_screenshot(QWidget& window, const QString& name) {
    const QString path = QStringLiteral(MWB_TEST_OUTPUT "/%1.png").arg(name);
    QVERIFY2(window.grab().save(path), qPrintable("cannot write " + path));
}

// The desktop app as main() puts it together, shown at `size`, on a settings file of the test.
struct TestApp {
    TestApp(Settings& settings, QSize size)
        : context{settings, storage, engine, testing::small_demo_recipe()}, window(context), loaded(engine.worker(), &EngineWorker::modelLoaded) {
        window.resize(size);
        window.show();
        if (!QTest::qWaitForWindowExposed(&window)) qFatal("the window was not shown");
    }
    Storage storage;
    EngineHost engine;
    ui::AppContext context;
    ui::MainWindow window;
    testing::QueuedSpy loaded;  // modelLoaded
};

// The message's action button with this text, when it is shown.
inline QToolButton* button(ui::MessageWidget* message, const QString& text) {
    for (QToolButton* b : message->findChildren<QToolButton*>())
        if (b->text() == text && b->isVisible()) return b;
    return nullptr;
}

// The messages of run `wanted` in the history (0: the first run listed), and that run's id.
inline QList<MessageRecord> stored_messages(const QString& database, qint64* run_id = nullptr, qint64 wanted = 0) {
    RunDatabase db("gui-test-reader");
    if (!db.open(database).ok()) return {};
    auto runs = db.list_runs();
    if (!runs || runs->isEmpty()) return {};
    const qint64 id = wanted ? wanted : runs->first().id;
    if (run_id) *run_id = id;
    auto messages = db.messages(id);
    return messages ? *messages : QList<MessageRecord>();
}

inline void wait_for_storage(Storage& storage) {
    bool flushed = false;
    storage.flush(qApp, [&flushed] { flushed = true; });
    QTRY_VERIFY(flushed);
}

}  // namespace
