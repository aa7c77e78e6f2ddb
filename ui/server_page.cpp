#include "ui/server_page.h"

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QTime>
#include <QTimer>
#include <QVBoxLayout>

#include "ui/browse_field.h"

namespace mwb::ui {

namespace {

enum Column { Id, Endpoint, Model, Client, State, Prompt, Completion, Ttft, TokensPerSecond, Finish, ColumnCount };

QString random_key() {
    QString key = "mwb-";
    static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    for (int i = 0; i < 32; ++i) key += QChar(alphabet[QRandomGenerator::system()->bounded(int(sizeof alphabet - 1))]);
    return key;
}

}  // namespace

ServerPage::ServerPage(AppContext& context, app::ServerHost& host, QWidget* parent)
    : QWidget(parent), context_(context), host_(host), gauge_timer_(new QTimer(this)) {
    model_dir_ = new QLineEdit;
    model_dir_->setPlaceholderText(tr("The model loaded in Chat"));
    model_dir_->setToolTip(tr("The model folder to serve. The server opens its own copy; on the CPU the weights are "
                              "memory-mapped and shared with Chat's."));
    host_name_ = new QLineEdit("127.0.0.1");
    host_name_->setToolTip(tr("127.0.0.1 serves this computer only. Another address (0.0.0.0 for every network) needs an API key."));
    port_ = new QSpinBox;
    port_->setRange(0, 65535);
    port_->setValue(8080);
    port_->setSpecialValueText(tr("any free port"));
    api_key_ = new QLineEdit;
    api_key_->setObjectName("serverApiKey");
    api_key_->setPlaceholderText(tr("none (this computer only)"));
    api_key_->setToolTip(tr("Clients send it as 'Authorization: Bearer KEY'. /health and /metrics stay open."));
    auto* generate_key = new QPushButton(tr("Generate"));
    generate_key->setToolTip(tr("A random key of 32 characters"));
    max_batch_ = new QSpinBox;
    max_batch_->setRange(1, 256);
    max_batch_->setValue(8);
    max_batch_->setToolTip(tr("Requests decoded together (KV-cache slots)"));
    max_queue_ = new QSpinBox;
    max_queue_->setRange(0, 4096);
    max_queue_->setValue(64);
    max_queue_->setToolTip(tr("Requests that wait for a slot; more are answered 429"));
    context_length_ = new QSpinBox;
    context_length_->setRange(64, 1 << 20);
    context_length_->setSingleStep(1024);
    context_length_->setValue(4096);
    context_length_->setSuffix(tr(" tokens"));
    device_ = new QComboBox;
    device_->addItem(tr("CPU"), false);
    device_->addItem(tr("CUDA"), true);
    device_->setCurrentIndex(context_.settings.default_device() == app::Device::Cuda ? 1 : 0);

    auto* key_row = new QHBoxLayout;
    key_row->addWidget(api_key_, 1);
    key_row->addWidget(generate_key);
    auto* address_row = new QHBoxLayout;
    address_row->addWidget(host_name_, 1);
    address_row->addWidget(new QLabel(tr("port")));
    address_row->addWidget(port_);
    auto* sizes_row = new QHBoxLayout;
    sizes_row->addWidget(max_batch_);
    sizes_row->addWidget(new QLabel(tr("queue")));
    sizes_row->addWidget(max_queue_);
    sizes_row->addWidget(new QLabel(tr("context")));
    sizes_row->addWidget(context_length_);
    sizes_row->addWidget(device_);
    sizes_row->addStretch(1);
    auto* form = new QFormLayout;
    form->addRow(tr("Model folder"), browse_field(model_dir_, Browse::Folder, tr("Model folder to serve")));
    form->addRow(tr("Address"), address_row);
    form->addRow(tr("API key"), key_row);
    form->addRow(tr("Batch"), sizes_row);

    start_ = new QPushButton(tr("Start server"));
    start_->setObjectName("startServer");
    stop_ = new QPushButton(tr("Stop"));
    chat_ = new QPushButton(tr("Chat with this server"));
    chat_->setToolTip(tr("Chat through the server's HTTP API, as any client would"));
    auto* copy = new QPushButton(tr("Copy address"));
    address_ = new QLabel(tr("Not running"));
    address_->setObjectName("serverAddress");
    address_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    gauges_ = new QLabel;
    gauges_->setWordWrap(true);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(start_);
    buttons->addWidget(stop_);
    buttons->addWidget(chat_);
    buttons->addWidget(copy);
    buttons->addWidget(address_, 1);
    example_ = new QLineEdit;
    example_->setReadOnly(true);
    example_->setToolTip(tr("A streamed chat completion with curl"));

    auto* settings_box = new QGroupBox(tr("Local OpenAI-compatible server"));
    auto* settings_layout = new QVBoxLayout(settings_box);
    settings_layout->addLayout(form);
    settings_layout->addLayout(buttons);
    settings_layout->addWidget(gauges_);
    settings_layout->addWidget(example_);

    requests_ = new QTableWidget(0, ColumnCount);
    requests_->setObjectName("serverRequests");
    requests_->setHorizontalHeaderLabels(
        {tr("#"), tr("Endpoint"), tr("Model"), tr("Client"), tr("State"), tr("Prompt"), tr("Generated"), tr("TTFT"), tr("tok/s"), tr("Finish")});
    requests_->verticalHeader()->setVisible(false);
    requests_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    requests_->setSelectionBehavior(QAbstractItemView::SelectRows);
    requests_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    requests_->horizontalHeader()->setStretchLastSection(true);
    log_ = new QPlainTextEdit;
    log_->setObjectName("serverLog");
    log_->setReadOnly(true);
    log_->setMaximumBlockCount(2000);
    log_->setLineWrapMode(QPlainTextEdit::NoWrap);
    auto* splitter = new QSplitter(Qt::Vertical);
    splitter->addWidget(requests_);
    splitter->addWidget(log_);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 1);

    auto* layout = new QVBoxLayout(this);
    layout->addWidget(settings_box);
    layout->addWidget(splitter, 1);

    connect(generate_key, &QPushButton::clicked, this, [this] { api_key_->setText(random_key()); });
    connect(start_, &QPushButton::clicked, this, &ServerPage::start);
    connect(stop_, &QPushButton::clicked, this, &ServerPage::stop);
    connect(copy, &QPushButton::clicked, this, [this] {
        if (host_.running()) QApplication::clipboard()->setText(host_.url() + "/v1");
    });
    connect(chat_, &QPushButton::clicked, this, [this] {
        app::RemoteEndpoint endpoint;
        endpoint.base_url = host_.url();
        endpoint.api_key = api_key_->text().trimmed();
        emit chatRequested(endpoint);
    });
    connect(&host_, &app::ServerHost::started, this, &ServerPage::on_started);
    connect(&host_, &app::ServerHost::startFailed, this, &ServerPage::on_failed);
    connect(&host_, &app::ServerHost::stopped, this, &ServerPage::on_stopped);
    connect(&host_, &app::ServerHost::requestUpdated, this, &ServerPage::show_request);
    connect(&host_, &app::ServerHost::logLine, this, &ServerPage::append_log);
    connect(gauge_timer_, &QTimer::timeout, this, &ServerPage::refresh_gauges);
    gauge_timer_->setInterval(500);
    update_controls();
}

void ServerPage::set_loaded_model(const QString& path, const QString& tokenizer_folder) {
    model_dir_->setPlaceholderText(tr("The model loaded in Chat: %1").arg(QFileInfo(path).fileName()));
    model_dir_->setProperty("loadedModel", path);
    loaded_tokenizer_folder_ = tokenizer_folder;
}

void ServerPage::set_port(int port) { port_->setValue(port); }

app::ServerSettings ServerPage::settings_from_form() const {
    app::ServerSettings s;
    const QString chosen = model_dir_->text().trimmed();
    s.model_directory = chosen.isEmpty() ? model_dir_->property("loadedModel").toString() : chosen;
    s.tokenizer_directory = context_.settings.tokenizer_folder(s.model_directory);
    if (chosen.isEmpty() && s.tokenizer_directory.isEmpty()) s.tokenizer_directory = loaded_tokenizer_folder_;
    s.host = host_name_->text().trimmed();
    s.port = port_->value();
    s.api_key = api_key_->text().trimmed();
    s.max_batch = max_batch_->value();
    s.max_queue = max_queue_->value();
    s.context = context_length_->value();
    s.cuda = device_->currentData().toBool();
    return s;
}

void ServerPage::start() {
    const app::ServerSettings s = settings_from_form();
    if (s.model_directory.isEmpty()) {
        on_failed(tr("Load a model in Chat, or choose a model folder to serve."));
        return;
    }
    append_log(tr("starting: %1").arg(s.model_directory));
    host_.start(s);
    update_controls();
}

void ServerPage::stop() {
    host_.stop();
    update_controls();
}

void ServerPage::on_started(const QString& url) {
    address_->setText(tr("Listening at <b>%1/v1</b>").arg(url.toHtmlEscaped()));
    const QString key = api_key_->text().trimmed();
    example_->setText(QString("curl -N %1/v1/chat/completions -H 'Content-Type: application/json'%2 -d "
                              "'{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"stream\": true}'")
                          .arg(url, key.isEmpty() ? QString() : QString(" -H 'Authorization: Bearer %1'").arg(key)));
    example_->setCursorPosition(0);
    gauge_timer_->start();
    refresh_gauges();
    update_controls();
    emit statusMessage(tr("The server listens at %1").arg(url));
}

void ServerPage::on_failed(const QString& message) {
    address_->setText(tr("Not running"));
    append_log(tr("could not start: %1").arg(message));
    update_controls();
    emit statusMessage(tr("The server did not start: %1").arg(message));
}

void ServerPage::on_stopped() {
    gauge_timer_->stop();
    address_->setText(tr("Not running"));
    gauges_->clear();
    update_controls();
}

void ServerPage::show_request(const app::ServerRequestRow& row) {
    refresh_gauges();
    int line = -1;
    for (int r = 0; r < requests_->rowCount(); ++r)
        if (requests_->item(r, Id)->data(Qt::UserRole).toLongLong() == row.id) line = r;
    if (line < 0) {
        line = 0;
        requests_->insertRow(0);  // newest on top
        if (requests_->rowCount() > 1000) requests_->removeRow(requests_->rowCount() - 1);
    }
    const QLocale locale;
    const bool ended = row.state == "done" || row.state == "cancelled" || row.state == "failed";
    const QStringList cells = {QString::number(row.id),
                               row.endpoint + (row.stream ? tr(" (stream)") : QString()),
                               row.model,
                               row.client,
                               row.state,
                               locale.toString(row.prompt_tokens),
                               ended ? locale.toString(row.completion_tokens) : QString(),
                               ended && row.completion_tokens > 0 ? QString("%1 s").arg(row.time_to_first_token_s, 0, 'f', 3) : QString(),
                               ended && row.decode_tokens_per_s > 0 ? QString::number(row.decode_tokens_per_s, 'f', 1) : QString(),
                               row.finish_reason};
    for (int c = 0; c < ColumnCount; ++c) {
        auto* item = new QTableWidgetItem(cells[c]);
        if (c == Id) item->setData(Qt::UserRole, row.id);
        if (c >= Prompt && c <= TokensPerSecond) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
        requests_->setItem(line, c, item);
    }
}

void ServerPage::append_log(const QString& line) { log_->appendPlainText(QTime::currentTime().toString("HH:mm:ss ") + line); }

void ServerPage::refresh_gauges() {
    const app::ServerGauges g = host_.gauges();
    const QLocale locale;
    gauges_->setText(tr("%1 of %2 slots busy · %3 waiting · KV cache %4% · %5 requests · %6 prompt and %7 generated tokens")
                         .arg(g.running)
                         .arg(g.slot_count)
                         .arg(g.waiting)
                         .arg(g.kv_cache_usage * 100, 0, 'f', 1)
                         .arg(locale.toString(g.finished), locale.toString(g.prompt_tokens), locale.toString(g.generated_tokens)));
}

void ServerPage::update_controls() {
    const bool running = host_.running(), busy = host_.busy();
    start_->setEnabled(!running && !busy);
    start_->setText(busy ? tr("Starting…") : tr("Start server"));
    stop_->setEnabled(running);
    chat_->setEnabled(running);
    for (QWidget* w : {static_cast<QWidget*>(model_dir_), static_cast<QWidget*>(host_name_), static_cast<QWidget*>(port_),
                       static_cast<QWidget*>(api_key_), static_cast<QWidget*>(max_batch_), static_cast<QWidget*>(max_queue_),
                       static_cast<QWidget*>(context_length_), static_cast<QWidget*>(device_)})
        w->setEnabled(!running && !busy);
}

}  // namespace mwb::ui
