// The main window of moe-workbench: one page per area of the workbench.
#pragma once

#include <QMainWindow>

namespace mwb::ui {

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
};

}  // namespace mwb::ui
