// A remote OpenAI-compatible endpoint to chat with (a vLLM or SGLang deployment, another workbench's
// server): base URL, API key, and the model, listed from the endpoint's /v1/models. Remembered for next time.
#pragma once

#include <QGroupBox>

#include "app/services/remote_chat.h"
#include "ui/app_context.h"

class QComboBox;
class QLabel;
class QLineEdit;

namespace mwb::ui {

class RemoteEndpointBox : public QGroupBox {
    Q_OBJECT
public:
    explicit RemoteEndpointBox(AppContext& context, QWidget* parent = nullptr);
    app::RemoteEndpoint endpoint() const;
    void set_endpoint(const app::RemoteEndpoint& endpoint);

signals:
    void chatRequested(mwb::app::RemoteEndpoint endpoint);

private:
    AppContext& context_;
    app::RemoteChat* lister_;
    QLineEdit* url_;
    QLineEdit* key_;
    QComboBox* model_;
    QLabel* status_;
};

}  // namespace mwb::ui
