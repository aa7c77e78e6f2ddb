#include "ui/chat_page.h"

#include <QApplication>
#include <QClipboard>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QScrollArea>
#include <QScrollBar>
#include <QSplitter>
#include <QTimer>
#include <QVBoxLayout>

#include "ui/message_widget.h"
#include "ui/sampling_panel.h"

namespace mwb::ui {

namespace {

QString title_from(const QString& first_message) {
    QString title = first_message.simplified();
    return title.size() > 48 ? title.left(47) + QStringLiteral("…") : title;
}

QString params_json(const app::SamplingSettings& s, const QString& system_prompt) {
    const QJsonObject params{{"temperature", s.temperature}, {"top_p", s.top_p},           {"top_k", qint64(s.top_k)},
                             {"min_p", s.min_p},             {"repetition_penalty", s.repetition_penalty},
                             {"max_new_tokens", s.max_new_tokens}, {"seed", QString::number(s.seed)},
                             {"system_prompt", system_prompt}};
    return QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Compact));
}

}  // namespace

ChatPage::ChatPage(AppContext& context, QWidget* parent) : QWidget(parent), context_(context) {
    build_ui();
    const app::EngineWorker* worker = context_.engine.worker();
    connect(worker, &app::EngineWorker::tokenText, this, [this](quint64 id, const QString& piece) {
        if (id != streaming_request_ || !streaming_widget_) return;
        streaming_widget_->append_text(piece);
        scroll_to_bottom();
    });
    connect(worker, &app::EngineWorker::generationFinished, this, &ChatPage::finish_generation);
    connect(worker, &app::EngineWorker::generationFailed, this, &ChatPage::fail_generation);
    connect(worker, &app::EngineWorker::tokensCounted, this, &ChatPage::show_token_count);
    connect(&context_.storage, &app::Storage::runsChanged, refresh_timer_, qOverload<>(&QTimer::start));
    connect(&context_.storage, &app::Storage::opened, this, &ChatPage::refresh_conversations);
    clear_model(tr("Loading a model…"));
}

void ChatPage::build_ui() {
    // Conversations.
    search_ = new QLineEdit;
    search_->setPlaceholderText(tr("Search conversations"));
    search_->setClearButtonEnabled(true);
    conversations_ = new QListWidget;
    conversations_->setObjectName("conversations");
    conversations_->setContextMenuPolicy(Qt::CustomContextMenu);
    conversations_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    conversations_->setTextElideMode(Qt::ElideRight);
    auto* new_button = new QPushButton(tr("New chat"));
    new_button->setToolTip(tr("Start a new conversation (Ctrl+N)"));
    auto* rename_button = new QPushButton(tr("Rename"));
    auto* delete_button = new QPushButton(tr("Delete"));
    auto* list_buttons = new QHBoxLayout;
    list_buttons->addWidget(rename_button);
    list_buttons->addWidget(delete_button);
    auto* left = new QWidget;
    auto* left_layout = new QVBoxLayout(left);
    left_layout->addWidget(new_button);
    left_layout->addWidget(search_);
    left_layout->addWidget(conversations_, 1);
    left_layout->addLayout(list_buttons);

    // Messages and input.
    notice_ = new QLabel;
    notice_->setObjectName("notice");
    notice_->setWordWrap(true);
    notice_->setVisible(false);
    notice_->setStyleSheet("QLabel { background: #fff4ce; color: #5c4400; padding: 6px; border-radius: 4px; }");
    model_label_ = new QLabel;
    model_label_->setObjectName("chatModel");
    messages_host_ = new QWidget;
    messages_layout_ = new QVBoxLayout(messages_host_);
    messages_layout_->addStretch();
    scroll_ = new QScrollArea;
    scroll_->setWidgetResizable(true);
    scroll_->setWidget(messages_host_);
    error_ = new QLabel;
    error_->setObjectName("chatError");
    error_->setWordWrap(true);
    error_->setVisible(false);
    error_->setStyleSheet("QLabel { color: #c0392b; }");
    context_label_ = new QLabel;
    context_label_->setObjectName("contextLabel");
    context_label_->setWordWrap(true);
    input_ = new QPlainTextEdit;
    input_->setObjectName("chatInput");
    input_->setMaximumHeight(110);
    send_ = new QPushButton(tr("Send"));
    send_->setObjectName("sendButton");
    send_->setToolTip(tr("Send the message (Ctrl+Return)"));
    send_->setDefault(true);
    stop_ = new QPushButton(tr("Stop"));
    stop_->setObjectName("stopButton");
    stop_->setToolTip(tr("Stop the reply (Esc)"));
    auto* buttons = new QVBoxLayout;
    buttons->addWidget(send_);
    buttons->addWidget(stop_);
    buttons->addStretch();
    auto* input_row = new QHBoxLayout;
    input_row->addWidget(input_, 1);
    input_row->addLayout(buttons);
    auto* center = new QWidget;
    auto* center_layout = new QVBoxLayout(center);
    center_layout->addWidget(notice_);
    center_layout->addWidget(model_label_);
    center_layout->addWidget(scroll_, 1);
    center_layout->addWidget(error_);
    center_layout->addWidget(context_label_);
    center_layout->addLayout(input_row);

    // System prompt and sampling.
    system_prompt_ = new QPlainTextEdit;
    system_prompt_->setObjectName("systemPrompt");
    system_prompt_->setPlaceholderText(tr("Optional instructions sent before the conversation"));
    system_prompt_->setPlainText(context_.settings.system_prompt());
    system_prompt_->setMaximumHeight(120);
    sampling_ = new SamplingPanel;
    sampling_->set_settings(context_.settings.default_sampling());
    auto* reset = new QPushButton(tr("Model defaults"));
    reset->setToolTip(tr("Sampling from the model's generation_config.json, or the defaults in Settings when it has none"));
    auto* system_box = new QGroupBox(tr("System prompt"));
    (new QVBoxLayout(system_box))->addWidget(system_prompt_);
    auto* sampling_box = new QGroupBox(tr("Sampling"));
    auto* sampling_layout = new QVBoxLayout(sampling_box);
    sampling_layout->addWidget(sampling_);
    sampling_layout->addWidget(reset);
    auto* right = new QWidget;
    auto* right_layout = new QVBoxLayout(right);
    right_layout->addWidget(system_box);
    right_layout->addWidget(sampling_box);
    right_layout->addStretch();

    auto* splitter = new QSplitter;
    splitter->setObjectName("chatSplitter");
    splitter->addWidget(left);
    splitter->addWidget(center);
    splitter->addWidget(right);
    splitter->setStretchFactor(1, 1);
    splitter->setSizes({220, 700, 260});
    (new QHBoxLayout(this))->addWidget(splitter);

    count_timer_ = new QTimer(this);
    count_timer_->setSingleShot(true);
    count_timer_->setInterval(300);
    refresh_timer_ = new QTimer(this);
    refresh_timer_->setSingleShot(true);
    refresh_timer_->setInterval(100);

    connect(new_button, &QPushButton::clicked, this, &ChatPage::new_chat);
    connect(rename_button, &QPushButton::clicked, this, &ChatPage::rename_current);
    connect(delete_button, &QPushButton::clicked, this, &ChatPage::delete_selected);
    connect(search_, &QLineEdit::textChanged, refresh_timer_, qOverload<>(&QTimer::start));
    connect(refresh_timer_, &QTimer::timeout, this, &ChatPage::refresh_conversations);
    connect(conversations_, &QListWidget::itemActivated, this, [this](QListWidgetItem* item) { open_run(item->data(Qt::UserRole).toLongLong()); });
    connect(conversations_, &QListWidget::itemClicked, this, [this](QListWidgetItem* item) { open_run(item->data(Qt::UserRole).toLongLong()); });
    connect(conversations_, &QListWidget::customContextMenuRequested, this, [this](const QPoint& at) {
        if (!conversations_->itemAt(at)) return;
        QMenu menu;
        menu.addAction(tr("Rename…"), this, &ChatPage::rename_current);
        menu.addAction(tr("Delete…"), this, &ChatPage::delete_selected);
        menu.exec(conversations_->viewport()->mapToGlobal(at));
    });
    connect(send_, &QPushButton::clicked, this, &ChatPage::send);
    connect(stop_, &QPushButton::clicked, this, &ChatPage::stop);
    connect(input_, &QPlainTextEdit::textChanged, count_timer_, qOverload<>(&QTimer::start));
    connect(sampling_, &SamplingPanel::changed, count_timer_, qOverload<>(&QTimer::start));
    connect(count_timer_, &QTimer::timeout, this, &ChatPage::request_token_count);
    connect(system_prompt_, &QPlainTextEdit::textChanged, this, [this] {
        context_.settings.set_system_prompt(system_prompt_->toPlainText());
        count_timer_->start();
    });
    connect(reset, &QPushButton::clicked, this, [this] { sampling_->set_settings(model_.default_sampling); });
}

QList<MessageWidget*> ChatPage::message_widgets() const {
    QList<MessageWidget*> widgets;
    for (int i = 0; i < messages_layout_->count(); ++i)
        if (auto* w = qobject_cast<MessageWidget*>(messages_layout_->itemAt(i)->widget())) widgets << w;
    return widgets;
}

void ChatPage::set_model(const app::LoadedModelInfo& info) {
    model_ = info;
    model_ready_ = true;
    if (!info.has_generation_config) model_.default_sampling = context_.settings.default_sampling();
    sampling_->set_settings(model_.default_sampling);
    model_label_->setText(info.is_demo ? tr("<b>%1</b> — a demo with random weights: its replies are gibberish. Open a real model on "
                                            "the Models page.")
                                             .arg(info.name.toHtmlEscaped())
                                       : tr("<b>%1</b> · %2 · context %3 tokens")
                                             .arg(info.name.toHtmlEscaped(), info.architecture)
                                             .arg(info.context_length));
    update_controls();
    request_token_count();
}

void ChatPage::clear_model(const QString& reason) {
    model_ready_ = false;
    model_label_->setText(reason.toHtmlEscaped());
    update_controls();
}

void ChatPage::show_notice(const QString& text) {
    notice_->setText(text);
    notice_->setVisible(!text.isEmpty());
}

void ChatPage::update_controls() {
    const bool generating = is_generating();
    send_->setEnabled(model_ready_ && !generating);
    stop_->setEnabled(generating);
    input_->setPlaceholderText(model_ready_ ? tr("Message the model (Ctrl+Return sends)") : tr("Load a model on the Models page to chat"));
    for (int i = 0; i < turns_.size(); ++i)
        turns_[i].widget->set_regenerate_visible(!generating && model_ready_ && i == turns_.size() - 1 && turns_[i].role == "assistant");
    for (MessageWidget* w : message_widgets()) w->setEnabled(!generating || w == streaming_widget_);
}

MessageWidget* ChatPage::add_turn_widget(const QString& role, const QString& text) {
    auto* widget = new MessageWidget(role);
    widget->set_text(text);
    connect(widget, &MessageWidget::copyRequested, this, [this](const QString& t) {
        QApplication::clipboard()->setText(t);
        emit statusMessage(tr("Copied the message"));
    });
    connect(widget, &MessageWidget::editRequested, this, [this, widget] { edit_turn(widget); });
    connect(widget, &MessageWidget::regenerateRequested, this, &ChatPage::regenerate_last);
    messages_layout_->insertWidget(messages_layout_->count() - 1, widget);
    return widget;
}

void ChatPage::scroll_to_bottom() {
    // After the layout has taken the new height.
    QTimer::singleShot(0, this, [this] { scroll_->verticalScrollBar()->setValue(scroll_->verticalScrollBar()->maximum()); });
}

QList<app::ChatMessage> ChatPage::prompt_messages(const QString& draft) const {
    QList<app::ChatMessage> messages;
    const QString system = system_prompt_->toPlainText().trimmed();
    if (!system.isEmpty()) messages << app::ChatMessage{"system", system};
    for (const Turn& t : turns_) messages << app::ChatMessage{t.role, t.content};
    if (!draft.isEmpty()) messages << app::ChatMessage{"user", draft};
    return messages;
}

void ChatPage::send() {
    if (!model_ready_ || is_generating()) return;
    const QString text = input_->toPlainText().trimmed();
    if (text.isEmpty()) return;
    input_->clear();
    error_->setVisible(false);
    ensure_run_stored(text);
    turns_ << Turn{"user", text, false, {}, add_turn_widget("user", text)};
    store_message(int(turns_.size()) - 1);
    start_generation();
}

void ChatPage::start_generation() {
    app::SamplingSettings sampling = sampling_->settings();
    if (sampling.seed == 0) sampling.seed = QRandomGenerator::global()->bounded(1u, 0x7fffffffu);
    streaming_widget_ = add_turn_widget("assistant", {});
    streaming_widget_->set_streaming(true);
    streaming_request_ = context_.engine.generate(prompt_messages({}), sampling);
    update_controls();
    scroll_to_bottom();
}

void ChatPage::stop() {
    if (is_generating()) context_.engine.stop(streaming_request_);
}

void ChatPage::finish_generation(quint64 request_id, const QString& text, const app::GenerationStats& stats,
                                 const app::RoutingSummary& routing) {
    if (request_id != streaming_request_) return;
    MessageWidget* widget = streaming_widget_;
    streaming_request_ = 0;
    streaming_widget_ = nullptr;
    widget->set_text(text);
    widget->set_streaming(false);
    widget->set_stats(stats);
    turns_ << Turn{"assistant", text, true, stats, widget};
    store_message(int(turns_.size()) - 1, routing);
    update_controls();
    request_token_count();  // supersedes counts requested while the reply was generated
    scroll_to_bottom();
    emit replyFinished(run_id_);
}

void ChatPage::fail_generation(quint64 request_id, const QString& message) {
    if (request_id != streaming_request_) return;
    streaming_request_ = 0;
    delete streaming_widget_;
    streaming_widget_ = nullptr;
    error_->setText(message);
    error_->setVisible(true);
    emit statusMessage(message);
    update_controls();
}

void ChatPage::regenerate_last() {
    if (is_generating() || turns_.isEmpty() || turns_.last().role != "assistant") return;
    truncate_from(int(turns_.size()) - 1);
    start_generation();
}

void ChatPage::edit_turn(MessageWidget* widget) {
    if (is_generating()) return;
    for (int i = 0; i < turns_.size(); ++i) {
        if (turns_[i].widget != widget) continue;
        input_->setPlainText(turns_[i].content);
        truncate_from(i);
        input_->setFocus();
        emit statusMessage(tr("Edit the message and send it again"));
        return;
    }
}

void ChatPage::truncate_from(int turn_index) {
    // Regenerate and Edit are buttons of these very widgets, still inside their click handler: detach the
    // widgets now and delete them once the event is done.
    while (turns_.size() > turn_index) {
        MessageWidget* widget = turns_.takeLast().widget;
        widget->setParent(nullptr);
        widget->deleteLater();
    }
    if (!stored_run_) return;
    const int position = stored_position(turn_index);
    context_.storage.write([run = stored_run_, position](app::RunDatabase& db) { return db.delete_messages_from(*run, position); });
}

void ChatPage::clear_turns() {
    if (is_generating()) stop();
    streaming_request_ = 0;
    streaming_widget_ = nullptr;
    for (MessageWidget* w : message_widgets()) delete w;
    turns_.clear();
    error_->setVisible(false);
}

void ChatPage::new_chat() {
    clear_turns();
    stored_run_.reset();
    run_id_ = 0;
    position_offset_ = 0;
    conversations_->clearSelection();
    context_label_->clear();
    update_controls();
    input_->setFocus();
}

void ChatPage::open_run(qint64 run_id) {
    if (run_id == run_id_ && !turns_.isEmpty()) return;
    context_.storage.request<QList<app::MessageRecord>>(
        [run_id](app::RunDatabase& db) { return db.messages(run_id); }, this, [this, run_id](const QList<app::MessageRecord>& messages) {
            clear_turns();
            stored_run_ = std::make_shared<qint64>(run_id);
            run_id_ = run_id;
            position_offset_ = 0;
            for (const app::MessageRecord& m : messages) {
                if (m.role == "system") {
                    position_offset_ = m.position + 1;
                    system_prompt_->setPlainText(m.content);
                    continue;
                }
                MessageWidget* widget = add_turn_widget(m.role, m.content);
                if (m.has_stats) widget->set_stats(m.stats);
                turns_ << Turn{m.role, m.content, m.has_stats, m.stats, widget};
            }
            show_stored_routing(messages);
            for (int i = 0; i < conversations_->count(); ++i)
                if (conversations_->item(i)->data(Qt::UserRole).toLongLong() == run_id) conversations_->setCurrentRow(i);
            update_controls();
            request_token_count();
            scroll_to_bottom();
        });
}

void ChatPage::show_stored_routing(const QList<app::MessageRecord>& messages) {
    for (auto m = messages.crbegin(); m != messages.crend(); ++m) {
        if (m->role != "assistant" || m->routing.empty()) continue;
        context_.engine.inspector()->show_stored_load(app::load_matrix_of(m->routing),
                                                      tr("Stored expert load of the last reply (tokens per expert)"));
        return;
    }
}

void ChatPage::ensure_run_stored(const QString& first_message) {
    if (stored_run_) return;
    stored_run_ = std::make_shared<qint64>(0);
    const QString system = system_prompt_->toPlainText().trimmed();
    position_offset_ = system.isEmpty() ? 0 : 1;
    const QString title = title_from(first_message);
    const QString model = model_.path;
    const QString params = params_json(sampling_->settings(), system);
    context_.storage.request<qint64>(
        [run = stored_run_, title, model, params, system](app::RunDatabase& db) -> Result<qint64> {
            auto id = db.create_run("chat", title, model, params);
            if (!id) return id;
            *run = *id;
            if (!system.isEmpty()) {
                app::MessageRecord m;
                m.run_id = *id;
                m.position = 0;
                m.role = "system";
                m.content = system;
                if (auto stored = db.add_message(m); !stored) return stored.error();
            }
            return id;
        },
        this, [this, run = stored_run_](qint64 id) {
            if (stored_run_ == run) run_id_ = id;
            refresh_conversations();
        });
}

void ChatPage::store_message(int turn_index, const app::RoutingSummary& routing) {
    const Turn& turn = turns_[turn_index];
    app::MessageRecord record;
    record.position = stored_position(turn_index);
    record.role = turn.role;
    record.content = turn.content;
    record.has_stats = turn.has_stats;
    record.stats = turn.stats;
    record.routing = routing;
    context_.storage.write([run = stored_run_, record](app::RunDatabase& db) mutable -> Status {
        if (*run == 0) return make_error("the message was not saved because its conversation could not be created in the run history");
        record.run_id = *run;
        auto id = db.add_message(record);
        if (!id) return id.error();
        return Status::success();
    });
}

void ChatPage::request_token_count() {
    if (!model_ready_) return;
    count_request_ = context_.engine.countTokens(prompt_messages(input_->toPlainText().trimmed()));
}

void ChatPage::show_token_count(quint64 request_id, int tokens, qint64 context_length) {
    if (request_id != count_request_) return;
    const int reply_budget = sampling_->settings().max_new_tokens;
    if (tokens + reply_budget > context_length) {
        context_label_->setText(tr("⚠ With a reply of up to %1 tokens this conversation needs %2 tokens, more than the context of %3. "
                                   "Start a new chat, shorten the messages, lower Max tokens, or load the model with a longer context.")
                                    .arg(reply_budget)
                                    .arg(tokens + reply_budget)
                                    .arg(context_length));
        context_label_->setStyleSheet("QLabel { color: #b35c00; }");
    } else {
        context_label_->setText(tr("Context: %1 of %2 tokens").arg(tokens).arg(context_length));
        context_label_->setStyleSheet({});
    }
}

void ChatPage::refresh_conversations() {
    app::RunFilter filter;
    filter.kind = "chat";
    filter.text = search_->text().trimmed();
    context_.storage.request<QList<app::RunRecord>>([filter](app::RunDatabase& db) { return db.list_runs(filter); }, this,
                                                    [this](const QList<app::RunRecord>& runs) {
                                                        conversations_->clear();
                                                        for (const app::RunRecord& run : runs) {
                                                            auto* item = new QListWidgetItem(run.title, conversations_);
                                                            item->setData(Qt::UserRole, run.id);
                                                            item->setToolTip(run.updated_at.toString(QLocale().dateTimeFormat(QLocale::ShortFormat)));
                                                            if (run.id == run_id_) conversations_->setCurrentItem(item);
                                                        }
                                                    });
}

void ChatPage::rename_current() {
    QListWidgetItem* item = conversations_->currentItem();
    if (!item) return;
    bool ok = false;
    const QString title = QInputDialog::getText(this, tr("Rename conversation"), tr("Title:"), QLineEdit::Normal, item->text(), &ok).trimmed();
    if (!ok || title.isEmpty()) return;
    const qint64 id = item->data(Qt::UserRole).toLongLong();
    item->setText(title);
    context_.storage.write([id, title](app::RunDatabase& db) { return db.rename_run(id, title); });
}

void ChatPage::delete_selected() {
    QListWidgetItem* item = conversations_->currentItem();
    if (!item) return;
    const qint64 id = item->data(Qt::UserRole).toLongLong();
    if (QMessageBox::question(this, tr("Delete conversation"),
                              tr("Delete “%1” and all its messages from the history? This cannot be undone.").arg(item->text())) !=
        QMessageBox::Yes)
        return;
    if (id == run_id_) new_chat();
    delete item;
    context_.storage.write([id](app::RunDatabase& db) { return db.delete_run(id); });
}

}  // namespace mwb::ui
