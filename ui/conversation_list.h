// The chat conversations of the history, searchable, with New chat, Rename and Delete (also on the context
// menu). Chat opens what the list asks for; the list keeps itself current as the history changes.
#pragma once

#include <QWidget>

#include "ui/app_context.h"

class QLineEdit;
class QListWidget;
class QTimer;

namespace mwb::ui {

class ConversationList : public QWidget {
    Q_OBJECT
public:
    explicit ConversationList(AppContext& context, QWidget* parent = nullptr);

    // Reads the list again (debounced when the history changes or the search text does).
    void refresh();
    // The conversation Chat shows, highlighted in the list; 0 for a new chat.
    void set_current(qint64 run_id);

signals:
    void openRequested(qint64 run_id);
    void newChatRequested();
    // The conversation is about to leave the history.
    void deleting(qint64 run_id);

private:
    void rename_current();
    void delete_selected();

    AppContext& context_;
    qint64 current_ = 0;
    QLineEdit* search_;
    QListWidget* conversations_;
    QTimer* refresh_timer_;
};

}  // namespace mwb::ui
