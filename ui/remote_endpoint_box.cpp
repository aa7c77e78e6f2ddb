#include "ui/remote_endpoint_box.h"

#include <QComboBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>

namespace mwb::ui {

RemoteEndpointBox::RemoteEndpointBox(AppContext& context, QWidget* parent)
    : QGroupBox(tr("Remote endpoint (OpenAI-compatible)"), parent), context_(context), lister_(new app::RemoteChat(this)) {
    url_ = new QLineEdit;
    url_->setPlaceholderText(tr("http://gpu-server:8000/v1"));
    key_ = new QLineEdit;
    key_->setEchoMode(QLineEdit::Password);
    key_->setPlaceholderText(tr("none"));
    key_->setToolTip(tr("Sent as 'Authorization: Bearer KEY'; kept in the app's settings file"));
    model_ = new QComboBox;
    model_->setEditable(true);
    model_->setMinimumContentsLength(20);
    auto* list = new QPushButton(tr("List models"));
    auto* chat = new QPushButton(tr("Chat with it"));
    chat->setObjectName("chatWithEndpoint");
    status_ = new QLabel;
    status_->setWordWrap(true);
    auto* model_row = new QHBoxLayout;
    model_row->addWidget(model_, 1);
    model_row->addWidget(list);
    model_row->addWidget(chat);
    auto* form = new QFormLayout(this);
    form->addRow(tr("Base URL"), url_);
    form->addRow(tr("API key"), key_);
    form->addRow(tr("Model"), model_row);
    form->addRow(status_);

    set_endpoint(context_.settings.remote_endpoint());
    connect(list, &QPushButton::clicked, this, [this] {
        status_->setText(tr("Asking %1 for its models…").arg(url_->text().trimmed()));
        lister_->listModels(endpoint());
    });
    connect(lister_, &app::RemoteChat::modelsListed, this, [this](const QStringList& models) {
        const QString current = model_->currentText();
        model_->clear();
        model_->addItems(models);
        if (!current.isEmpty() && models.contains(current)) model_->setCurrentText(current);
        status_->setText(tr("%n model(s) served", nullptr, int(models.size())));
    });
    connect(lister_, &app::RemoteChat::modelsFailed, this, [this](const QString& message) { status_->setText(message); });
    connect(chat, &QPushButton::clicked, this, [this] {
        if (url_->text().trimmed().isEmpty()) {
            status_->setText(tr("Give the endpoint's base URL first."));
            return;
        }
        context_.settings.set_remote_endpoint(endpoint());
        emit chatRequested(endpoint());
    });
}

app::RemoteEndpoint RemoteEndpointBox::endpoint() const {
    app::RemoteEndpoint e;
    e.base_url = url_->text().trimmed();
    e.api_key = key_->text().trimmed();
    e.model = model_->currentText().trimmed();
    return e;
}

void RemoteEndpointBox::set_endpoint(const app::RemoteEndpoint& endpoint) {
    url_->setText(endpoint.base_url);
    key_->setText(endpoint.api_key);
    model_->setCurrentText(endpoint.model);
}

}  // namespace mwb::ui
