// The Settings page: theme, default device, data directory, Hugging Face cache, what to do with a conversation
// longer than the context, default sampling.
// Changes apply at once and are saved; a new data directory takes effect at the next start.
#pragma once

#include <QWidget>

#include "ui/app_context.h"

class QComboBox;
class QLineEdit;

namespace mwb::ui {

class SamplingPanel;

class SettingsPage : public QWidget {
    Q_OBJECT
public:
    explicit SettingsPage(AppContext& context, QWidget* parent = nullptr);

signals:
    void themeChanged(app::Theme theme);
    void statusMessage(QString text);

private:
    AppContext& context_;
    QComboBox* theme_;
    QComboBox* device_;
    QComboBox* overflow_;
    QLineEdit* data_directory_;
    QLineEdit* hub_directory_;
    SamplingPanel* sampling_;
};

}  // namespace mwb::ui
