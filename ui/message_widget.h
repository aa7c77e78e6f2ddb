// One chat message: Markdown body, a collapsible "Thinking" section for R1-style <think> reasoning (live while
// streaming), its generation statistics, and the actions that apply to it (copy, edit and resend, regenerate).
#pragma once

#include <QFrame>

#include "app/services/chat_types.h"

class QLabel;
class QTextBrowser;
class QToolButton;

namespace mwb::ui {

class MessageWidget : public QFrame {
    Q_OBJECT
public:
    MessageWidget(const QString& role, QWidget* parent = nullptr);

    QString role() const { return role_; }
    QString text() const { return text_; }
    void set_text(const QString& text);
    void append_text(const QString& piece);
    void set_streaming(bool streaming);
    void set_stats(const app::GenerationStats& stats);
    void set_regenerate_visible(bool visible);
    QString stats_text() const;
    QString answer_text() const;    // the body as shown, without the reasoning
    QString thinking_text() const;  // the reasoning as shown
    bool thinking_visible() const;

signals:
    void copyRequested(QString text);
    void editRequested();
    void regenerateRequested();

private:
    void render();

    QString role_;
    QString text_;
    bool streaming_ = false;
    QLabel* header_;
    QToolButton* thinking_toggle_;
    QTextBrowser* thinking_;
    QTextBrowser* body_;
    QLabel* stats_;
    QToolButton* regenerate_;
};

}  // namespace mwb::ui
