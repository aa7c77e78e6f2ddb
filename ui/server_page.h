// The Server page: the local OpenAI-compatible server started and stopped from the app — which model, the
// address, an API key, batch and queue sizes — with a live table of requests (tokens, TTFT, tokens/s), the
// server's gauges, its log, and a button that points Chat at it.
#pragma once

#include <QWidget>

#include "app/services/remote_chat.h"
#include "app/services/server_host.h"
#include "ui/app_context.h"

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;
class QTimer;

namespace mwb::ui {

class ServerPage : public QWidget {
    Q_OBJECT
public:
    ServerPage(AppContext& context, app::ServerHost& host, QWidget* parent = nullptr);

    // The model Chat has loaded: what the server serves unless the user names another folder.
    void set_loaded_model(const QString& path, const QString& tokenizer_folder);
    void set_port(int port);  // 0: any free port
    void start();
    void stop();
    QTableWidget* requests_table() const { return requests_; }

signals:
    void chatRequested(mwb::app::RemoteEndpoint endpoint);
    void statusMessage(QString text);

private:
    void on_started(const QString& url);
    void on_failed(const QString& message);
    void on_stopped();
    void show_request(const app::ServerRequestRow& row);
    void append_log(const QString& line);
    void refresh_gauges();
    void update_controls();
    app::ServerSettings settings_from_form() const;

    AppContext& context_;
    app::ServerHost& host_;
    QString loaded_tokenizer_folder_;

    QLineEdit* model_dir_;
    QLineEdit* host_name_;
    QSpinBox* port_;
    QLineEdit* api_key_;
    QSpinBox* max_batch_;
    QSpinBox* max_queue_;
    QSpinBox* context_length_;
    QComboBox* device_;
    QPushButton* start_;
    QPushButton* stop_;
    QPushButton* chat_;
    QLabel* address_;
    QLabel* gauges_;
    QLineEdit* example_;
    QTableWidget* requests_;
    QPlainTextEdit* log_;
    QTimer* gauge_timer_;
};

}  // namespace mwb::ui
