#include "ui/message_widget.h"

#include <QAbstractTextDocumentLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QTextBrowser>
#include <QToolButton>
#include <QVBoxLayout>

#include "app/services/chat_text.h"

namespace mwb::ui {

namespace {

// A read-only Markdown view as tall as its content, so that the chat scrolls as one column.
QTextBrowser* markdown_view(QWidget* parent) {
    auto* view = new QTextBrowser(parent);
    view->setOpenExternalLinks(true);
    view->setFrameShape(QFrame::NoFrame);
    view->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    view->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    view->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    view->viewport()->setAutoFillBackground(false);  // the message's background shows through
    QObject::connect(view->document()->documentLayout(), &QAbstractTextDocumentLayout::documentSizeChanged, view,
                     [view](const QSizeF& size) { view->setFixedHeight(int(size.height()) + 4); });
    return view;
}

QToolButton* action_button(const QString& text, const QString& tip, QWidget* parent) {
    auto* button = new QToolButton(parent);
    button->setText(text);
    button->setToolTip(tip);
    button->setAutoRaise(true);
    return button;
}

}  // namespace

MessageWidget::MessageWidget(const QString& role, QWidget* parent) : QFrame(parent), role_(role) {
    setObjectName(role == "user" ? "userMessage" : "assistantMessage");
    setFrameShape(QFrame::StyledPanel);
    setAutoFillBackground(true);
    setBackgroundRole(role == "user" ? QPalette::AlternateBase : QPalette::Base);  // roles follow a theme change

    header_ = new QLabel(role == "user" ? tr("<b>You</b>") : role == "system" ? tr("<b>System</b>") : tr("<b>Assistant</b>"), this);
    auto* copy = action_button(tr("Copy"), tr("Copy this message"), this);
    auto* edit = action_button(tr("Edit"), tr("Edit this message and send it again (later messages are removed)"), this);
    regenerate_ = action_button(tr("Regenerate"), tr("Replace this reply with a new one"), this);
    edit->setVisible(role == "user");
    regenerate_->setVisible(false);
    connect(copy, &QToolButton::clicked, this, [this] { emit copyRequested(text_); });
    connect(edit, &QToolButton::clicked, this, &MessageWidget::editRequested);
    connect(regenerate_, &QToolButton::clicked, this, &MessageWidget::regenerateRequested);

    auto* header_row = new QHBoxLayout;
    header_row->addWidget(header_);
    header_row->addStretch();
    header_row->addWidget(copy);
    header_row->addWidget(edit);
    header_row->addWidget(regenerate_);

    thinking_toggle_ = new QToolButton(this);
    thinking_toggle_->setObjectName("thinkingToggle");
    thinking_toggle_->setCheckable(true);
    thinking_toggle_->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    thinking_toggle_->setArrowType(Qt::RightArrow);
    thinking_toggle_->setAutoRaise(true);
    thinking_toggle_->setVisible(false);
    thinking_ = markdown_view(this);
    thinking_->setObjectName("thinking");
    thinking_->setVisible(false);
    QFont reasoning_font = thinking_->font();
    reasoning_font.setItalic(true);
    thinking_->setFont(reasoning_font);
    connect(thinking_toggle_, &QToolButton::toggled, this, [this](bool open) {
        thinking_toggle_->setArrowType(open ? Qt::DownArrow : Qt::RightArrow);
        thinking_->setVisible(open);
    });

    body_ = markdown_view(this);
    body_->setObjectName("body");
    stats_ = new QLabel(this);
    stats_->setObjectName("stats");
    stats_->setVisible(false);
    stats_->setForegroundRole(QPalette::PlaceholderText);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(10, 6, 10, 6);
    layout->setSpacing(2);
    layout->addLayout(header_row);
    layout->addWidget(thinking_toggle_);
    layout->addWidget(thinking_);
    layout->addWidget(body_);
    layout->addWidget(stats_);
}

void MessageWidget::set_text(const QString& text) {
    text_ = text;
    render();
}

void MessageWidget::append_text(const QString& piece) {
    text_ += piece;
    render();
}

void MessageWidget::set_streaming(bool streaming) {
    streaming_ = streaming;
    render();
}

void MessageWidget::render() {
    if (role_ != "assistant") {
        body_->setPlainText(text_);
        return;
    }
    const app::ReasoningSplit split = app::split_reasoning(text_);
    thinking_toggle_->setVisible(split.has_thinking);
    if (split.has_thinking) {
        const bool live = streaming_ && !split.thinking_finished;
        thinking_toggle_->setText(live ? tr("Thinking…") : tr("Thinking"));
        // Open while the model is still reasoning, so the user sees it live; the user's choice holds after.
        if (live && !thinking_toggle_->isChecked()) thinking_toggle_->setChecked(true);
        thinking_->setMarkdown(split.thinking);
    }
    body_->setMarkdown(split.answer.isEmpty() && streaming_ && !split.has_thinking ? QStringLiteral("…") : split.answer);
}

void MessageWidget::set_stats(const app::GenerationStats& stats) {
    stats_->setText(app::stats_line(stats));
    stats_->setVisible(true);
}

void MessageWidget::set_regenerate_visible(bool visible) { regenerate_->setVisible(visible); }
QString MessageWidget::stats_text() const { return stats_->isHidden() ? QString() : stats_->text(); }
QString MessageWidget::answer_text() const { return body_->toPlainText(); }
QString MessageWidget::thinking_text() const { return thinking_->toPlainText(); }
bool MessageWidget::thinking_visible() const { return thinking_toggle_->isVisible(); }

}  // namespace mwb::ui
