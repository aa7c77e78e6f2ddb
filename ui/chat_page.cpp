#include "ui/chat_page.h"

#include <QApplication>
#include <QClipboard>
#include <QDropEvent>
#include <QKeyEvent>
#include <QMimeData>
#include <QFileInfo>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QScrollArea>
#include <QScrollBar>
#include <QSplitter>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include "app/services/image_store.h"
#include "ui/attachment_bar.h"
#include "ui/conversation_list.h"
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

// The sampling a run was last answered with (params_json's keys); what is missing keeps `s`'s value.
app::SamplingSettings sampling_from_params(const QString& json, app::SamplingSettings s) {
    const QJsonObject params = QJsonDocument::fromJson(json.toUtf8()).object();
    s.temperature = params.value("temperature").toDouble(s.temperature);
    s.top_p = params.value("top_p").toDouble(s.top_p);
    s.top_k = params.value("top_k").toInteger(s.top_k);
    s.min_p = params.value("min_p").toDouble(s.min_p);
    s.repetition_penalty = params.value("repetition_penalty").toDouble(s.repetition_penalty);
    s.max_new_tokens = params.value("max_new_tokens").toInt(s.max_new_tokens);
    bool ok = false;
    const quint64 seed = params.value("seed").toString().toULongLong(&ok);
    if (ok) s.seed = seed;
    return s;
}

// A run and its conversation as the history shows them.
struct StoredChat {
    app::RunRecord run;  // id 0: not found
    QList<app::MessageRecord> messages;
};

}  // namespace

ChatPage::ChatPage(AppContext& context, QWidget* parent)
    : QWidget(parent), context_(context), history_(new app::ChatHistory(context.storage, this)), remote_(new app::RemoteChat(this)) {
    build_ui();
    const app::EngineWorker* worker = context_.engine.worker();
    connect(worker, &app::EngineWorker::generationStarted, this, &ChatPage::on_generation_started);
    connect(worker, &app::EngineWorker::tokenText, this, &ChatPage::on_token_text);
    connect(worker, &app::EngineWorker::generationFinished, this, &ChatPage::finish_generation);
    connect(worker, &app::EngineWorker::generationFailed, this, &ChatPage::fail_generation);
    connect(worker, &app::EngineWorker::tokensCounted, this, &ChatPage::show_token_count);
    connect(remote_, &app::RemoteChat::generationStarted, this, &ChatPage::on_generation_started);
    connect(remote_, &app::RemoteChat::tokenText, this, &ChatPage::on_token_text);
    connect(remote_, &app::RemoteChat::generationFinished, this, &ChatPage::finish_generation);
    connect(remote_, &app::RemoteChat::generationFailed, this, &ChatPage::fail_generation);
    connect(&context_.storage, &app::Storage::opened, this, &ChatPage::reopen_last_chat);
    connect(history_, &app::ChatHistory::runCreated, this, [this](qint64 id) {
        context_.settings.set_last_chat(id);
        conversations_->set_current(id);
        conversations_->refresh();
    });
    clear_model(tr("Loading a model…"));
}

ChatPage::~ChatPage() {
    remote_->disconnect(this);  // an aborted remote stream reports synchronously; this page is going
    interrupt_generation();
}

void ChatPage::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    // In a narrow window the side panel would squeeze the conversation: it starts hidden there.
    if (side_panel_chosen_) return;
    const bool wide = width() >= kSidePanelMinimumPageWidth;
    show_side_panel(wide);
    side_toggle_->setChecked(wide);
}

void ChatPage::show_side_panel(bool shown) {
    if (side_panel_->isVisibleTo(this) == shown) return;
    side_panel_->setVisible(shown);
    if (!shown) return;
    // A panel shown again gets its natural width back from the conversation, not the sliver the splitter left.
    QList<int> sizes = splitter_->sizes();
    const int wanted = side_panel_->sizeHint().width();
    if (sizes.size() == 3 && sizes[2] < wanted) {
        sizes[1] = std::max(0, sizes[1] - (wanted - sizes[2]));
        sizes[2] = wanted;
        splitter_->setSizes(sizes);
    }
}

void ChatPage::build_ui() {
    conversations_ = new ConversationList(context_);

    // Messages and input.
    notice_ = new QLabel;
    notice_->setObjectName("notice");
    notice_->setWordWrap(true);
    notice_->setVisible(false);
    notice_->setStyleSheet("QLabel { background: #fff4ce; color: #5c4400; padding: 6px; border-radius: 4px; }");
    model_label_ = new QLabel;
    model_label_->setObjectName("chatModel");
    model_label_->setWordWrap(true);  // a long model name or notice must not widen the window
    side_toggle_ = new QToolButton;
    side_toggle_->setObjectName("sidePanelToggle");
    side_toggle_->setText(tr("System prompt && sampling"));
    side_toggle_->setCheckable(true);
    side_toggle_->setChecked(true);
    side_toggle_->setToolTip(tr("Show or hide the system prompt and sampling settings (hidden by itself in a narrow window)"));
    auto* header_row = new QHBoxLayout;
    header_row->addWidget(model_label_, 1);
    header_row->addWidget(side_toggle_, 0, Qt::AlignTop);
    messages_host_ = new QWidget;
    messages_layout_ = new QVBoxLayout(messages_host_);
    messages_layout_->addStretch();
    scroll_ = new QScrollArea;
    scroll_->setObjectName("transcript");
    scroll_->setWidgetResizable(true);
    // Messages reflow to the width; nothing in them is wider than the transcript.
    scroll_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    scroll_->setWidget(messages_host_);
    error_ = new QLabel;
    error_->setObjectName("chatError");
    error_->setWordWrap(true);
    error_->setVisible(false);
    error_->setStyleSheet("QLabel { color: #c0392b; }");
    context_label_ = new QLabel;
    context_label_->setObjectName("contextLabel");
    context_label_->setWordWrap(true);
    edit_bar_ = new QWidget;
    edit_bar_->setObjectName("editBar");
    auto* edit_label = new QLabel(tr("Editing a message: Send adds the new version; the old one and its replies stay (‹ › switches)."));
    edit_label->setWordWrap(true);
    auto* cancel_edit = new QPushButton(tr("Cancel edit"));
    cancel_edit->setObjectName("cancelEdit");
    auto* edit_layout = new QHBoxLayout(edit_bar_);
    edit_layout->setContentsMargins(0, 0, 0, 0);
    edit_layout->addWidget(edit_label, 1);
    edit_layout->addWidget(cancel_edit);
    edit_bar_->setVisible(false);
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
    center_layout->addLayout(header_row);
    center_layout->addWidget(scroll_, 1);
    center_layout->addWidget(error_);
    center_layout->addWidget(context_label_);
    center_layout->addWidget(edit_bar_);
    attachments_ = new AttachmentBar;
    center_layout->addWidget(attachments_);
    center_layout->addLayout(input_row);
    input_->installEventFilter(this);
    connect(attachments_, &AttachmentBar::statusMessage, this, &ChatPage::statusMessage);

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
    side_panel_ = new QWidget;
    side_panel_->setObjectName("chatSidePanel");
    auto* right = side_panel_;
    auto* right_layout = new QVBoxLayout(right);
    right_layout->addWidget(system_box);
    right_layout->addWidget(sampling_box);
    right_layout->addStretch();

    auto* splitter = splitter_ = new QSplitter;
    splitter->setObjectName("chatSplitter");
    splitter->addWidget(conversations_);
    splitter->addWidget(center);
    splitter->addWidget(right);
    splitter->setStretchFactor(1, 1);
    splitter->setSizes({220, 700, 260});
    (new QHBoxLayout(this))->addWidget(splitter);

    count_timer_ = new QTimer(this);
    count_timer_->setSingleShot(true);
    count_timer_->setInterval(300);
    connect(conversations_, &ConversationList::newChatRequested, this, &ChatPage::new_chat);
    connect(conversations_, &ConversationList::openRequested, this, &ChatPage::open_run);
    connect(conversations_, &ConversationList::deleting, this, [this](qint64 id) {
        if (id == history_->run_id()) new_chat();
    });
    connect(send_, &QPushButton::clicked, this, &ChatPage::send);
    connect(cancel_edit, &QPushButton::clicked, this, [this] {
        set_editing(-1);
        input_->clear();
    });
    connect(stop_, &QPushButton::clicked, this, &ChatPage::stop);
    connect(input_, &QPlainTextEdit::textChanged, count_timer_, qOverload<>(&QTimer::start));
    connect(sampling_, &SamplingPanel::changed, count_timer_, qOverload<>(&QTimer::start));
    connect(count_timer_, &QTimer::timeout, this, &ChatPage::request_token_count);
    connect(system_prompt_, &QPlainTextEdit::textChanged, this, [this] {
        context_.settings.set_system_prompt(system_prompt_->toPlainText());
        count_timer_->start();
    });
    connect(reset, &QPushButton::clicked, this, [this] { sampling_->set_settings(model_.default_sampling); });
    connect(side_toggle_, &QToolButton::clicked, this, [this](bool shown) {
        side_panel_chosen_ = true;  // from now on the user decides, whatever the width
        show_side_panel(shown);
    });
}

QList<MessageWidget*> ChatPage::message_widgets() const {
    QList<MessageWidget*> widgets;
    for (int i = 0; i < messages_layout_->count(); ++i)
        if (auto* w = qobject_cast<MessageWidget*>(messages_layout_->itemAt(i)->widget())) widgets << w;
    return widgets;
}

void ChatPage::set_model(const app::LoadedModelInfo& info) {
    remote_endpoint_.reset();
    model_ = info;
    model_ready_ = true;
    attachments_->set_vision_available(info.sees_images, info.name);
    if (!info.has_generation_config) model_.default_sampling = context_.settings.default_sampling();
    // A conversation from the history keeps the sampling it was answered with ("Model defaults" resets it).
    if (!history_->has_run()) sampling_->set_settings(model_.default_sampling);
    show_model_label();
    update_controls();
    request_token_count();
}

bool ChatPage::eventFilter(QObject* watched, QEvent* event) {
    if (watched != input_) return QWidget::eventFilter(watched, event);
    if (event->type() == QEvent::Drop && attachments_->add_mime(static_cast<QDropEvent*>(event)->mimeData())) return true;
    if (event->type() == QEvent::KeyPress && static_cast<QKeyEvent*>(event)->matches(QKeySequence::Paste)) {
        const QMimeData* clipboard = QApplication::clipboard()->mimeData();
        if (clipboard && !clipboard->hasText() && attachments_->add_mime(clipboard)) return true;
    }
    return QWidget::eventFilter(watched, event);
}

void ChatPage::use_remote(const app::RemoteEndpoint& endpoint) {
    remote_endpoint_ = endpoint;
    attachments_->set_vision_available(false, endpoint.label());
    model_ = {};
    model_.path = endpoint.base_url + "#" + endpoint.model;
    model_.name = endpoint.label();
    model_.default_sampling = context_.settings.default_sampling();
    model_ready_ = true;
    if (!history_->has_run()) sampling_->set_settings(model_.default_sampling);
    show_model_label();
    context_label_->clear();  // the endpoint counts the tokens; it refuses a prompt that does not fit
    update_controls();
}

void ChatPage::show_model_label() {
    if (remote_endpoint_) {
        model_label_->setText(tr("<b>%1</b> · remote OpenAI-compatible endpoint (no routing data)").arg(remote_endpoint_->label().toHtmlEscaped()));
        model_label_->setToolTip(remote_endpoint_->base_url);
        return;
    }
    const app::LoadedModelInfo& info = model_;
    QString text = info.is_demo ? tr("<b>%1</b> — a demo with random weights: its replies are gibberish. Open a real model on "
                                     "the Models page.")
                                      .arg(info.name.toHtmlEscaped())
                                : tr("<b>%1</b> · %2 · context %3 tokens").arg(info.name.toHtmlEscaped(), info.architecture).arg(info.context_length);
    if (!adapter_.isEmpty()) text += tr(" · <b>with the adapter %1</b>").arg(QFileInfo(adapter_).fileName().toHtmlEscaped());
    model_label_->setText(text);
    model_label_->setToolTip(adapter_.isEmpty() ? info.path : info.path + "\n" + adapter_);
}

void ChatPage::set_adapter(const QString& directory) {
    adapter_ = directory;
    if (model_ready_) show_model_label();
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
    for (int i = 0; i < turns_.size(); ++i) {
        const Turn& turn = turns_[i];
        const bool last_reply = i == turns_.size() - 1 && turn.role == "assistant";
        turn.widget->set_regenerate_visible(!generating && model_ready_ && last_reply);
        if (turn.widget != streaming_.widget) turn.widget->set_interrupted(!turn.complete, !generating && model_ready_ && last_reply);
    }
    for (MessageWidget* w : message_widgets()) w->setEnabled(!generating || w == streaming_.widget);
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
    connect(widget, &MessageWidget::continueRequested, this, &ChatPage::continue_last);
    connect(widget, &MessageWidget::alternativeRequested, this, [this, widget](int step) { switch_alternative(widget, step); });
    connect(widget, &MessageWidget::inspectRequested, this, [this, widget] { inspect_turn(widget); });
    messages_layout_->insertWidget(messages_layout_->count() - 1, widget);
    return widget;
}

void ChatPage::scroll_to_bottom() {
    // After the layout has taken the new height.
    QTimer::singleShot(0, this, [this] { scroll_->verticalScrollBar()->setValue(scroll_->verticalScrollBar()->maximum()); });
}

int ChatPage::turn_of(const MessageWidget* widget) const {
    for (int i = 0; i < turns_.size(); ++i)
        if (turns_[i].widget == widget) return i;
    return -1;
}

QList<app::ChatMessage> ChatPage::prompt_messages(int turns, const QString& draft) const {
    QList<app::ChatMessage> messages;
    const QString system = system_prompt_->toPlainText().trimmed();
    if (!system.isEmpty()) messages << app::ChatMessage{"system", system};
    for (int i = 0; i < turns && i < turns_.size(); ++i) messages << app::ChatMessage{turns_[i].role, turns_[i].content, turns_[i].images};
    if (!draft.isEmpty()) messages << app::ChatMessage{"user", draft};
    return messages;
}

QString ChatPage::current_params() const { return params_json(sampling_->settings(), system_prompt_->toPlainText().trimmed()); }

void ChatPage::send() {
    if (!model_ready_ || is_generating()) return;
    const QString text = input_->toPlainText().trimmed();
    if (text.isEmpty()) return;
    // An edited message follows the one before it, as a sibling of the original; nothing is deleted.
    if (editing_ >= 0) {
        const int edited = editing_;
        set_editing(-1);
        pending_parent_ = edited > 0 ? turns_[edited - 1].id : nullptr;
        remove_turns_from(edited);
    } else {
        pending_parent_ = turns_.isEmpty() ? nullptr : turns_.last().id;
    }
    input_->clear();
    error_->setVisible(false);
    const QStringList images = attachments_->take();
    turns_ << Turn{"user", text, true, add_turn_widget("user", text), nullptr, images};
    turns_.last().widget->set_images(images);
    user_turn_pending_ = true;
    start_generation(false);
}

void ChatPage::start_generation(bool continue_last_turn) {
    app::SamplingSettings sampling = sampling_->settings();
    if (sampling.seed == 0) sampling.seed = QRandomGenerator::global()->bounded(1u, 0x7fffffffu);
    streaming_ = {};
    streaming_.continues_last_turn = continue_last_turn;
    int prompt_turns = int(turns_.size());
    if (continue_last_turn) {
        --prompt_turns;
        streaming_.widget = turns_.last().widget;
        streaming_.prefix = turns_.last().content;
        streaming_.text = streaming_.prefix;
        streaming_.widget->set_interrupted(false, false);
    } else {
        streaming_.widget = add_turn_widget("assistant", {});
    }
    streaming_.widget->set_streaming(true);
    const QList<app::ChatMessage> prompt = prompt_messages(prompt_turns, {});
    streaming_.request = remote_endpoint_ ? remote_->generate(*remote_endpoint_, prompt, sampling, streaming_.prefix)
                                          : context_.engine.generate(prompt, sampling, context_.settings.context_overflow(), streaming_.prefix);
    update_controls();
    scroll_to_bottom();
}

void ChatPage::on_generation_started(quint64 request_id, int, const QString& context_note) {
    if (request_id != streaming_.request) return;
    // The engine accepted the prompt: now the message and the reply's row go into the history.
    if (!history_->has_run()) {
        const QString first = turns_.isEmpty() ? QString() : turns_.first().content;
        history_->create_run(title_from(first), model_.path, current_params(), system_prompt_->toPlainText().trimmed());
    } else {
        history_->set_params(current_params());
    }
    if (user_turn_pending_) {
        user_turn_pending_ = false;
        app::MessageRecord message;
        message.role = "user";
        message.content = turns_.last().content;
        turns_.last().id = history_->add(message, pending_parent_, turns_.last().images, app::ImageStore(context_.settings.image_directory()));
        pending_parent_.reset();
    }
    if (streaming_.continues_last_turn) {
        streaming_.id = turns_.last().id;
    } else {
        app::MessageRecord reply;
        reply.role = "assistant";
        reply.complete = false;
        streaming_.id = history_->add(reply, turns_.last().id);
    }
    streaming_.widget->set_note(context_note);
    if (!context_note.isEmpty()) emit statusMessage(context_note);
}

void ChatPage::on_token_text(quint64 request_id, const QString& piece) {
    if (request_id != streaming_.request) return;
    streaming_.text += piece;
    streaming_.widget->append_text(piece);
    if (streaming_.id) history_->stream(streaming_.id, streaming_.text);
    scroll_to_bottom();
}

void ChatPage::stop() {
    if (is_generating()) stop_request(streaming_.request);
}

void ChatPage::stop_request(quint64 request_id) {
    if (remote_endpoint_) remote_->stop(request_id);
    else context_.engine.stop(request_id);
}

void ChatPage::finish_generation(quint64 request_id, const QString& text, const app::GenerationStats& stats,
                                 const app::RoutingSummary& routing) {
    if (request_id != streaming_.request) return;
    const Streaming reply = std::exchange(streaming_, {});
    const QString content = reply.prefix + text;
    reply.widget->set_text(content);
    reply.widget->set_streaming(false);
    reply.widget->set_stats(stats);
    app::MessageRecord record;
    record.role = "assistant";
    record.content = content;
    record.has_stats = true;
    record.stats = stats;
    record.routing = routing;
    history_->finish(reply.id, record);
    if (reply.continues_last_turn) {
        turns_.last().content = content;
        turns_.last().complete = true;
    } else {
        turns_ << Turn{"assistant", content, true, reply.widget, reply.id};
    }
    update_controls();
    refresh_alternatives();
    request_token_count();  // supersedes counts requested while the reply was generated
    scroll_to_bottom();
    emit replyFinished(history_->run_id());
}

void ChatPage::fail_generation(quint64 request_id, const QString& message) {
    if (request_id != streaming_.request) return;
    const Streaming reply = std::exchange(streaming_, {});
    reply.widget->set_streaming(false);
    if (reply.id) {
        // It failed while writing: keep what it wrote, as an interrupted reply.
        app::MessageRecord record;
        record.role = "assistant";
        record.content = reply.text;
        record.complete = false;
        history_->finish(reply.id, record);
        if (reply.continues_last_turn) turns_.last().content = reply.text;
        else turns_ << Turn{"assistant", reply.text, false, reply.widget, reply.id};
    } else {
        // Refused before anything was stored (the conversation does not fit, no model): the message goes back
        // into the input box and the conversation is shown as the history has it.
        if (!reply.continues_last_turn) delete reply.widget;
        if (user_turn_pending_) {
            user_turn_pending_ = false;
            pending_parent_.reset();
            const Turn turn = turns_.takeLast();
            delete turn.widget;
            if (input_->toPlainText().trimmed().isEmpty()) input_->setPlainText(turn.content);
            // A message sent again before the history answers wins: the view then already shows its conversation.
            if (history_->has_run())
                history_->read(this, [this](const QList<app::MessageRecord>& messages) {
                    if (!is_generating()) show_conversation(messages);
                });
        }
    }
    error_->setText(message);
    error_->setVisible(true);
    emit statusMessage(message);
    update_controls();
}

void ChatPage::interrupt_generation() {
    if (!is_generating()) return;
    stop_request(streaming_.request);
    const Streaming reply = std::exchange(streaming_, {});
    if (!reply.id) return;
    app::MessageRecord record;
    record.role = "assistant";
    record.content = reply.text;
    record.complete = false;
    history_->finish(reply.id, record);
}

void ChatPage::regenerate_last() {
    if (is_generating() || turns_.isEmpty() || turns_.last().role != "assistant") return;
    // The new reply is a sibling of this one, which stays in the history.
    remove_turns_from(int(turns_.size()) - 1);
    start_generation(false);
}

void ChatPage::continue_last() {
    if (is_generating() || !model_ready_ || turns_.isEmpty() || turns_.last().role != "assistant" || turns_.last().complete) return;
    start_generation(true);
}

void ChatPage::edit_turn(MessageWidget* widget) {
    if (is_generating()) return;
    const int turn = turn_of(widget);
    if (turn < 0) return;
    input_->setPlainText(turns_[turn].content);
    set_editing(turn);
    input_->setFocus();
    emit statusMessage(tr("Edit the message and send it: the current version stays as an alternative"));
}

void ChatPage::set_editing(int turn_index) {
    editing_ = turn_index;
    edit_bar_->setVisible(turn_index >= 0);
    request_token_count();
}

void ChatPage::switch_alternative(MessageWidget* widget, int step) {
    const int turn = turn_of(widget);
    if (is_generating() || turn < 0 || !turns_[turn].id) return;
    set_editing(-1);
    history_->switch_alternative(turns_[turn].id, step, this, [this](const QList<app::MessageRecord>& messages) {
        show_conversation(messages);
        conversations_->refresh();
    });
}

void ChatPage::inspect_turn(MessageWidget* widget) {
    const int turn = turn_of(widget);
    if (turn < 0) return;
    const bool reply = turns_[turn].role == "assistant";
    // A reply is inspected as the model wrote it: the conversation before it, then its text.
    emit inspectRequested(prompt_messages(reply ? turn : turn + 1, {}), reply ? turns_[turn].content : QString(),
                          tr("Message %1 (%2)").arg(turn + 1).arg(reply ? tr("reply") : tr("your message")));
}

void ChatPage::remove_turns_from(int turn_index) {
    // Regenerate and Edit are buttons of these very widgets, still inside their click handler: detach the
    // widgets now and delete them once the event is done.
    while (turns_.size() > turn_index) {
        MessageWidget* widget = turns_.takeLast().widget;
        widget->setParent(nullptr);
        widget->deleteLater();
    }
}

void ChatPage::show_conversation(const QList<app::MessageRecord>& messages) {
    remove_turns_from(0);
    const app::ImageStore image_store(context_.settings.image_directory());
    for (const app::MessageRecord& m : messages) {
        if (m.role == "system") {
            system_prompt_->setPlainText(m.content);
            continue;
        }
        MessageWidget* widget = add_turn_widget(m.role, m.content);
        if (m.has_stats) widget->set_stats(m.stats);
        widget->set_alternatives(int(m.siblings.indexOf(m.id)), int(m.siblings.size()));
        QStringList images;
        for (const QString& sha256 : m.images) images << image_store.path(sha256);
        widget->set_images(images);
        turns_ << Turn{m.role, m.content, m.complete, widget, std::make_shared<std::atomic<qint64>>(m.id), images};
    }
    show_stored_routing(messages);
    update_controls();
    request_token_count();
    scroll_to_bottom();
    emit conversationShown(history_->run_id());
}

void ChatPage::refresh_alternatives() {
    history_->read(this, [this](const QList<app::MessageRecord>& messages) {
        for (const app::MessageRecord& m : messages)
            for (const Turn& turn : turns_)
                if (turn.id && turn.id->load() == m.id) turn.widget->set_alternatives(int(m.siblings.indexOf(m.id)), int(m.siblings.size()));
    });
}

void ChatPage::new_chat() {
    interrupt_generation();
    set_editing(-1);
    remove_turns_from(0);
    user_turn_pending_ = false;
    history_->reset();
    error_->setVisible(false);
    conversations_->set_current(0);
    context_label_->clear();
    update_controls();
    input_->setFocus();
}

void ChatPage::open_run(qint64 run_id) {
    if (run_id == history_->run_id() && !turns_.isEmpty()) return;
    context_.storage.request<StoredChat>(
        [run_id](app::RunDatabase& db) -> Result<StoredChat> {
            auto run = db.run(run_id);
            if (!run) return run.error();
            auto messages = db.messages(run_id);
            if (!messages) return messages.error();
            return StoredChat{*run, *messages};
        },
        this, [this](const StoredChat& chat) {
            new_chat();
            const bool has_system = !chat.messages.isEmpty() && chat.messages.first().role == "system";
            history_->adopt(chat.run.id, has_system ? chat.messages.first().id : 0);
            context_.settings.set_last_chat(chat.run.id);
            sampling_->set_settings(sampling_from_params(chat.run.params_json, sampling_->settings()));
            show_conversation(chat.messages);
            conversations_->set_current(chat.run.id);
        });
}

void ChatPage::reopen_last_chat() {
    const qint64 last = context_.settings.last_chat();
    if (last == 0 || history_->has_run()) return;
    // A chat deleted since is simply not reopened.
    context_.storage.request<bool>(
        [last](app::RunDatabase& db) -> Result<bool> {
            auto run = db.run(last);
            return run.ok() && run->kind == "chat";
        },
        this, [this, last](bool exists) {
            if (exists && !history_->has_run()) open_run(last);
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

void ChatPage::request_token_count() {
    if (!model_ready_ || remote_endpoint_) return;
    count_request_ = context_.engine.countTokens(prompt_messages(editing_ >= 0 ? editing_ : int(turns_.size()), input_->toPlainText().trimmed()));
}

void ChatPage::show_token_count(quint64 request_id, int tokens, qint64 context_length) {
    if (request_id != count_request_) return;
    const int reply_budget = sampling_->settings().max_new_tokens;
    const QLocale locale;
    if (tokens + reply_budget > context_length) {
        QString consequence;
        switch (context_.settings.context_overflow()) {
        case app::ContextOverflow::Refuse:
            consequence = tr("Start a new chat, shorten the messages, lower Max tokens, or load the model with a longer context.");
            break;
        case app::ContextOverflow::DropOldestTurns:
            consequence = tr("The oldest messages will be left out of the prompt (Settings).");
            break;
        case app::ContextOverflow::TruncateMiddle:
            consequence = tr("The middle of the conversation will be left out of the prompt (Settings).");
            break;
        }
        context_label_->setText(tr("⚠ With a reply of up to %1 tokens this conversation needs %2 tokens, more than the context of %3. %4")
                                    .arg(locale.toString(reply_budget), locale.toString(tokens + reply_budget), locale.toString(context_length),
                                         consequence));
        context_label_->setStyleSheet("QLabel { color: #b35c00; }");
    } else {
        context_label_->setText(tr("Context: %1 of %2 tokens").arg(locale.toString(tokens), locale.toString(context_length)));
        context_label_->setStyleSheet({});
    }
}

}  // namespace mwb::ui
