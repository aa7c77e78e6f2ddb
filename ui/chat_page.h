// The Chat page: conversations (new, rename, delete, search), streaming replies from the engine thread,
// stop / regenerate / edit-and-resend / copy, system prompt, sampling, per-reply statistics, context warning.
// Every message is written to the run history as it completes; a reply in flight is written when it ends.
#pragma once

#include <QWidget>
#include <memory>

#include "app/services/chat_types.h"
#include "ui/app_context.h"

class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QScrollArea;
class QTimer;
class QVBoxLayout;

namespace mwb::ui {

class MessageWidget;
class SamplingPanel;

class ChatPage : public QWidget {
    Q_OBJECT
public:
    explicit ChatPage(AppContext& context, QWidget* parent = nullptr);

    void new_chat();
    void open_run(qint64 run_id);
    void send();
    void stop();
    bool is_generating() const { return streaming_request_ != 0; }
    qint64 current_run_id() const { return run_id_; }

    void set_model(const app::LoadedModelInfo& info);
    void clear_model(const QString& reason);
    void show_notice(const QString& text);

    QList<MessageWidget*> message_widgets() const;

signals:
    void statusMessage(QString text);
    void replyFinished(qint64 run_id);  // stored or queued for storage

private:
    struct Turn {
        QString role;
        QString content;
        bool has_stats = false;
        app::GenerationStats stats;
        MessageWidget* widget = nullptr;
    };

    void build_ui();
    MessageWidget* add_turn_widget(const QString& role, const QString& text);
    void start_generation();
    void finish_generation(quint64 request_id, const QString& text, const app::GenerationStats& stats,
                           const app::RoutingSummary& routing);
    void fail_generation(quint64 request_id, const QString& message);
    void regenerate_last();
    void edit_turn(MessageWidget* widget);
    void truncate_from(int turn_index);
    void clear_turns();
    void update_controls();
    void scroll_to_bottom();
    QList<app::ChatMessage> prompt_messages(const QString& draft) const;
    void request_token_count();
    void show_token_count(quint64 request_id, int tokens, qint64 context_length);

    void ensure_run_stored(const QString& first_message);
    void store_message(int turn_index, const app::RoutingSummary& routing = {});
    // Hands the Inspector the stored expert load of the conversation's last reply.
    void show_stored_routing(const QList<app::MessageRecord>& messages);
    int stored_position(int turn_index) const { return turn_index + position_offset_; }
    void refresh_conversations();
    void rename_current();
    void delete_selected();

    AppContext& context_;
    app::LoadedModelInfo model_;
    bool model_ready_ = false;

    QList<Turn> turns_;
    // The run id as the storage thread knows it: written by the job that creates the run, read by the jobs
    // posted after it (jobs run in order), so that messages can be stored before the GUI learns the id.
    std::shared_ptr<qint64> stored_run_;
    qint64 run_id_ = 0;
    int position_offset_ = 0;  // 1 when the run starts with a system message
    quint64 streaming_request_ = 0;
    MessageWidget* streaming_widget_ = nullptr;
    quint64 count_request_ = 0;

    QLineEdit* search_;
    QListWidget* conversations_;
    QLabel* notice_;
    QLabel* model_label_;
    QScrollArea* scroll_;
    QWidget* messages_host_;
    QVBoxLayout* messages_layout_;
    QLabel* error_;
    QLabel* context_label_;
    QPlainTextEdit* input_;
    QPushButton* send_;
    QPushButton* stop_;
    QPlainTextEdit* system_prompt_;
    SamplingPanel* sampling_;
    QTimer* count_timer_;
    QTimer* refresh_timer_;
};

}  // namespace mwb::ui
