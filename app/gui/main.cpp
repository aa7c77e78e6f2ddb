// moe-workbench: the desktop app. Opens the run history and the last model, or creates and loads the
// built-in demo model on first launch.
#include <QApplication>
#include <QCommandLineParser>

#include "app/services/demo_model.h"
#include "app/services/engine_worker.h"
#include "app/services/settings.h"
#include "app/services/storage.h"
#include "ui/app_context.h"
#include "ui/main_window.h"
#include "ui/theme.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName("moe-workbench");
    QApplication::setOrganizationName("MoE Workbench");
    QApplication::setApplicationVersion(MWB_VERSION);

    QCommandLineParser arguments;
    arguments.setApplicationDescription("MoE Workbench: chat with DeepSeek-family models and watch their experts.");
    arguments.addHelpOption();
    arguments.addVersionOption();
    arguments.addPositionalArgument("model", "A Hugging Face model folder to load (default: the last one, else the demo model).");
    arguments.process(app);

    mwb::app::Settings settings;
    mwb::ui::apply_theme(settings.theme());
    // Declared in this order so that the engine thread stops first and the storage thread, which may still
    // hold the last reply, is drained last.
    mwb::app::Storage storage;
    mwb::app::EngineHost engine;
    mwb::ui::AppContext context{settings, storage, engine, mwb::app::standard_demo_recipe()};
    mwb::ui::MainWindow window(context);
    window.show();
    window.start(arguments.positionalArguments().value(0));
    return app.exec();
}
