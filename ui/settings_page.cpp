#include "ui/settings_page.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include "ui/browse_field.h"
#include "ui/sampling_panel.h"

namespace mwb::ui {


SettingsPage::SettingsPage(AppContext& context, QWidget* parent) : QWidget(parent), context_(context) {
    theme_ = new QComboBox;
    theme_->addItems({tr("Light"), tr("Dark")});
    theme_->setCurrentIndex(context_.settings.theme() == app::Theme::Dark ? 1 : 0);
    device_ = new QComboBox;
    device_->addItems({app::device_name(app::Device::Cpu), app::device_name(app::Device::Cuda)});
    device_->setCurrentIndex(context_.settings.default_device() == app::Device::Cuda ? 1 : 0);
    data_directory_ = new QLineEdit(context_.settings.data_directory());
    hub_directory_ = new QLineEdit(context_.settings.huggingface_hub_directory());
    sampling_ = new SamplingPanel;
    sampling_->set_settings(context_.settings.default_sampling());
    overflow_ = new QComboBox;
    overflow_->setObjectName("contextOverflow");
    // In the order of app::ContextOverflow.
    overflow_->addItems({tr("Refuse it and say by how much it is too long"), tr("Leave out the oldest messages"),
                         tr("Leave out the middle of the conversation")});
    overflow_->setCurrentIndex(int(context_.settings.context_overflow()));

    auto* general = new QGroupBox(tr("General"));
    auto* form = new QFormLayout(general);
    form->addRow(tr("Theme"), theme_);
    form->addRow(tr("Default device"), device_);
    form->addRow(tr("Data directory"), browse_field(data_directory_, Browse::Folder, tr("Data directory")));
    form->addRow(QString(), new QLabel(tr("<small>Holds the run history and the demo model; a change takes effect at the next start.</small>")));
    form->addRow(tr("Hugging Face cache"), browse_field(hub_directory_, Browse::Folder, tr("Hugging Face hub cache")));
    auto* chat = new QGroupBox(tr("Chat"));
    auto* chat_form = new QFormLayout(chat);
    chat_form->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    chat_form->addRow(tr("A conversation longer than the context"), overflow_);
    chat_form->addRow(QString(), new QLabel(tr("<small>Whatever is left out stays in the history; the reply says what was left out.</small>")));
    auto* sampling_box = new QGroupBox(tr("Default sampling (for models without generation_config.json)"));
    (new QVBoxLayout(sampling_box))->addWidget(sampling_);

    // Forms read best at a bounded width; the rest of a wide window stays empty.
    auto* column = new QWidget;
    column->setMaximumWidth(760);
    auto* column_layout = new QVBoxLayout(column);
    column_layout->setContentsMargins(0, 0, 0, 0);
    column_layout->addWidget(general);
    column_layout->addWidget(chat);
    column_layout->addWidget(sampling_box);
    column_layout->addStretch();
    auto* layout = new QHBoxLayout(this);
    layout->addWidget(column, 1);
    layout->addStretch(0);
    layout->setContentsMargins(24, 24, 24, 24);

    connect(theme_, &QComboBox::currentIndexChanged, this, [this](int index) {
        const app::Theme theme = index == 1 ? app::Theme::Dark : app::Theme::Light;
        context_.settings.set_theme(theme);
        emit themeChanged(theme);
    });
    connect(device_, &QComboBox::currentIndexChanged, this,
            [this](int index) { context_.settings.set_default_device(index == 1 ? app::Device::Cuda : app::Device::Cpu); });
    connect(data_directory_, &QLineEdit::editingFinished, this, [this] {
        if (data_directory_->text().trimmed() == context_.settings.data_directory()) return;
        context_.settings.set_data_directory(data_directory_->text().trimmed());
        emit statusMessage(tr("The new data directory is used from the next start"));
    });
    connect(hub_directory_, &QLineEdit::editingFinished, this,
            [this] { context_.settings.set_huggingface_hub_directory(hub_directory_->text().trimmed()); });
    connect(overflow_, &QComboBox::currentIndexChanged, this,
            [this](int index) { context_.settings.set_context_overflow(app::ContextOverflow(index)); });
    connect(sampling_, &SamplingPanel::changed, this, [this] { context_.settings.set_default_sampling(sampling_->settings()); });
}

}  // namespace mwb::ui
