#include "ui/main_window.h"

#include <QLabel>

namespace mwb::ui {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle("MoE Workbench");
    auto* placeholder = new QLabel(tr("MoE Workbench — open a model folder with File ▸ Open"), this);
    placeholder->setAlignment(Qt::AlignCenter);
    setCentralWidget(placeholder);
    resize(1200, 800);
}

}  // namespace mwb::ui
