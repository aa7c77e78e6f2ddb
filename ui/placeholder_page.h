// A page whose feature lands in a later release: it says what it will do.
#pragma once

#include <QWidget>

namespace mwb::ui {

class PlaceholderPage : public QWidget {
    Q_OBJECT
public:
    PlaceholderPage(const QString& title, const QString& description, QWidget* parent = nullptr);
};

}  // namespace mwb::ui
