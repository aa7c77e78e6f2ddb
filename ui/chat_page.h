// The Chat page: conversations (new, rename, delete, search), streaming replies from the engine thread,
// stop / regenerate / edit-and-resend / continue / copy, alternative versions of a message (‹ 2/3 ›), system
// prompt, sampling, per-reply statistics, context warning. The history is written through ChatHistory: a
// message when it is sent, a reply while it streams; nothing is deleted by an edit or a regeneration.
#pragma once

#include <QWidget>

#include "app/services/chat_history.h"
#include "app/services/chat_types.h"
#include "app/services/remote_chat.h"
#include "ui/app_context.h"

#include <optional>

class QLabel;
class QPlainTextEdit;
class QPushButton;
class QScrollArea;
class QSplitter;
class QTimer;
class QToolButton;
class QVBoxLayout;

namespace mwb::ui {

class AttachmentBar;
class ConversationList;
class MessageWidget;
class SamplingPanel;

class ChatPage : public QWidget {
    Q_OBJECT
public:
    explicit ChatPage(AppContext& context, QWidget* parent = nullptr);
    // A reply still streaming is kept in the history, marked as interrupted.
    ~ChatPage() override;

    void new_chat();
    void open_run(qint64 run_id);
    void send();
    void stop();
    bool is_generating() const { return streaming_.request != 0; }
    bool is_editing() const { return editing_ >= 0; }
    qint64 current_run_id() const { return history_->run_id(); }

    void set_model(const app::LoadedModelInfo& info);
    void clear_model(const QString& reason);
    void show_notice(const QString& text);
    // The LoRA adapter replies are generated with (empty: none); the header says so.
    void set_adapter(const QString& directory);
    // Replies come from a remote OpenAI-compatible endpoint until a local model is set again.
    void use_remote(const app::RemoteEndpoint& endpoint);
    bool is_remote() const { return remote_endpoint_.has_value(); }

    QList<MessageWidget*> message_widgets() const;

protected:
    void resizeEvent(QResizeEvent* event) override;
    // Images dropped or pasted into the input become attachments instead of text.
    bool eventFilter(QObject* watched, QEvent* event) override;

signals:
    void statusMessage(QString text);
    void replyFinished(qint64 run_id);  // stored or queued for storage
    void conversationShown(qint64 run_id);  // a conversation was read from the history and shown
    // Inspect a message: `messages` lead up to it and `reply` is its text when it is a reply (else empty).
    void inspectRequested(QList<app::ChatMessage> messages, QString reply, QString origin);

private:
    struct Turn {
        QString role;
        QString content;
        bool complete = true;
        MessageWidget* widget = nullptr;
        app::ChatHistory::MessageId id;  // null while a sent message waits for the engine to accept it
        QStringList images{};            // files of the images attached to the message
    };
    // The reply being generated.
    struct Streaming {
        quint64 request = 0;
        MessageWidget* widget = nullptr;
        bool continues_last_turn = false;  // Continue of an interrupted reply
        QString text;                      // the whole reply so far, including what it continues
        QString prefix;                    // what it continues
        app::ChatHistory::MessageId id;    // its row, once the engine has accepted the prompt
    };

    void build_ui();
    MessageWidget* add_turn_widget(const QString& role, const QString& text);
    void start_generation(bool continue_last_turn);
    void on_generation_started(quint64 request_id, int prompt_tokens, const QString& context_note);
    void on_token_text(quint64 request_id, const QString& piece);
    void finish_generation(quint64 request_id, const QString& text, const app::GenerationStats& stats,
                           const app::RoutingSummary& routing);
    void fail_generation(quint64 request_id, const QString& message);
    // Stops the reply in flight and keeps what it wrote, as interrupted.
    void interrupt_generation();
    void stop_request(quint64 request_id);  // on the engine or the remote endpoint that runs it
    void regenerate_last();
    void continue_last();
    void edit_turn(MessageWidget* widget);
    void set_editing(int turn_index);
    void switch_alternative(MessageWidget* widget, int step);
    void inspect_turn(MessageWidget* widget);
    void remove_turns_from(int turn_index);  // from the view only
    void show_conversation(const QList<app::MessageRecord>& messages);
    void refresh_alternatives();
    int turn_of(const MessageWidget* widget) const;
    void update_controls();
    void show_model_label();
    void show_side_panel(bool shown);
    void scroll_to_bottom();
    QList<app::ChatMessage> prompt_messages(int turns, const QString& draft) const;
    QString current_params() const;
    void request_token_count();
    void show_token_count(quint64 request_id, int tokens, qint64 context_length);

    // Hands the Inspector the stored expert load of the conversation's last reply.
    void show_stored_routing(const QList<app::MessageRecord>& messages);
    void reopen_last_chat();

    AppContext& context_;
    app::ChatHistory* history_;
    app::LoadedModelInfo model_;
    bool model_ready_ = false;
    QString adapter_;
    app::RemoteChat* remote_;
    std::optional<app::RemoteEndpoint> remote_endpoint_;

    QList<Turn> turns_;
    Streaming streaming_;
    bool user_turn_pending_ = false;  // the last turn was sent and waits for the engine to accept it
    app::ChatHistory::MessageId pending_parent_;  // where that turn attaches
    int editing_ = -1;                // the turn being edited in the input box
    quint64 count_request_ = 0;

    ConversationList* conversations_;
    QLabel* notice_;
    QLabel* model_label_;
    QScrollArea* scroll_;
    QWidget* messages_host_;
    QVBoxLayout* messages_layout_;
    QLabel* error_;
    QLabel* context_label_;
    QWidget* edit_bar_;
    QPlainTextEdit* input_;
    AttachmentBar* attachments_;  // images for the next message: dropped or pasted into the input, or attached
    QPushButton* send_;
    QPushButton* stop_;
    QPlainTextEdit* system_prompt_;
    SamplingPanel* sampling_;
    QTimer* count_timer_;
    QSplitter* splitter_;
    QWidget* side_panel_;  // system prompt and sampling
    QToolButton* side_toggle_;
    bool side_panel_chosen_ = false;  // the user showed or hid it: the width no longer decides
    static constexpr int kSidePanelMinimumPageWidth = 1050;
};

}  // namespace mwb::ui
