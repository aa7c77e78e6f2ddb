// moe-workbench: the desktop app.
#include <QApplication>

#include "ui/main_window.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setApplicationName("moe-workbench");
    QApplication::setOrganizationName("MoE Workbench");
    mwb::ui::MainWindow window;
    window.show();
    return app.exec();
}
