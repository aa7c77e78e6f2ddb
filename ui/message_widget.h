// One chat message: Markdown body, a collapsible "Thinking" section for R1-style <think> reasoning (live while
// streaming), its generation statistics, and the actions that apply to it (copy, edit and resend, regenerate,
// continue an interrupted reply, switch between alternative versions).
#pragma once

#include <QFrame>

#include "app/services/chat_types.h"

class QHBoxLayout;
class QLabel;
class QVBoxLayout;
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
    // A reply that did not finish (the app quit or crashed while it streamed); Continue is offered when
    // `can_continue`.
    void set_interrupted(bool interrupted, bool can_continue);
    bool is_interrupted() const { return interrupted_; }
    // "‹ 2/3 ›": this message is alternative `index` (from 0) of `count`; hidden when there is one.
    void set_alternatives(int index, int count);
    QString alternatives_text() const;
    // A line under the message, e.g. what the context overflow policy left out of the prompt.
    void set_note(const QString& note);
    // The images attached to a message, shown as thumbnails above its text (empty: none).
    void set_images(const QStringList& files);
    int image_count() const;
    QString note_text() const;
    QString stats_text() const;
    QString answer_text() const;    // the body as shown, without the reasoning
    QString thinking_text() const;  // the reasoning as shown
    bool thinking_visible() const;

    QSize minimumSizeHint() const override;

signals:
    void copyRequested(QString text);
    void editRequested();
    void regenerateRequested();
    void continueRequested();
    void inspectRequested();
    void alternativeRequested(int step);  // -1: the previous version, +1: the next

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void render();

    QString role_;
    QString text_;
    bool streaming_ = false;
    bool interrupted_ = false;
    QVBoxLayout* layout_;
    QHBoxLayout* header_row_;
    QWidget* actions_;  // in the header row, or on a row of their own under it when the message is narrow
    bool actions_below_ = false;
    QLabel* header_;
    QToolButton* thinking_toggle_;
    QTextBrowser* thinking_;
    QTextBrowser* body_;
    QLabel* stats_;
    QLabel* note_;
    QLabel* interrupted_label_;
    QHBoxLayout* images_;
    QToolButton* regenerate_;
    QToolButton* continue_;
    QToolButton* previous_;
    QLabel* alternatives_;
    QToolButton* next_;
};

}  // namespace mwb::ui
