#include "ui/message_widget.h"

#include <QAbstractTextDocumentLayout>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QImage>
#include <QLabel>
#include <QTextBlock>
#include <QTextBrowser>
#include <QTextCursor>
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
    view->setWordWrapMode(QTextOption::WrapAtWordBoundaryOrAnywhere);  // long unbroken strings too
    view->viewport()->setAutoFillBackground(false);  // the message's background shows through
    QObject::connect(view->document()->documentLayout(), &QAbstractTextDocumentLayout::documentSizeChanged, view,
                     [view](const QSizeF& size) { view->setFixedHeight(int(size.height()) + 4); });
    return view;
}

// Markdown code blocks do not break lines; in a chat column they must, or their text is cut at the edge.
void set_markdown_wrapped(QTextBrowser* view, const QString& markdown) {
    view->setMarkdown(markdown);
    QTextCursor cursor(view->document());
    for (QTextBlock block = view->document()->begin(); block.isValid(); block = block.next()) {
        if (!block.blockFormat().nonBreakableLines()) continue;
        QTextBlockFormat format = block.blockFormat();
        format.setNonBreakableLines(false);
        cursor.setPosition(block.position());
        cursor.setBlockFormat(format);
    }
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
    auto* edit = action_button(tr("Edit"), tr("Edit this message and send it again (this version and its replies stay as an alternative)"), this);
    regenerate_ = action_button(tr("Regenerate"), tr("Write a new reply (this one stays as an alternative)"), this);
    continue_ = action_button(tr("Continue"), tr("Let the model go on from where this reply stopped"), this);
    auto* inspect = action_button(tr("Inspect"), tr("Show this message's expert routing and attention in the Inspector (re-runs its forward pass)"),
                                  this);
    previous_ = action_button(QStringLiteral("‹"), tr("The previous version"), this);
    previous_->setObjectName("previousAlternative");
    next_ = action_button(QStringLiteral("›"), tr("The next version"), this);
    next_->setObjectName("nextAlternative");
    alternatives_ = new QLabel(this);
    alternatives_->setObjectName("alternatives");
    for (QWidget* w : {static_cast<QWidget*>(previous_), static_cast<QWidget*>(alternatives_), static_cast<QWidget*>(next_)}) w->setVisible(false);
    edit->setVisible(role == "user");
    regenerate_->setVisible(false);
    continue_->setVisible(false);
    connect(copy, &QToolButton::clicked, this, [this] { emit copyRequested(text_); });
    connect(edit, &QToolButton::clicked, this, &MessageWidget::editRequested);
    connect(regenerate_, &QToolButton::clicked, this, &MessageWidget::regenerateRequested);
    connect(continue_, &QToolButton::clicked, this, &MessageWidget::continueRequested);
    connect(inspect, &QToolButton::clicked, this, &MessageWidget::inspectRequested);
    connect(previous_, &QToolButton::clicked, this, [this] { emit alternativeRequested(-1); });
    connect(next_, &QToolButton::clicked, this, [this] { emit alternativeRequested(+1); });

    header_row_ = new QHBoxLayout;
    header_row_->addWidget(header_);
    header_row_->addWidget(previous_);
    header_row_->addWidget(alternatives_);
    header_row_->addWidget(next_);
    header_row_->addStretch();
    actions_ = new QWidget(this);
    auto* actions_layout = new QHBoxLayout(actions_);
    actions_layout->setContentsMargins(0, 0, 0, 0);
    actions_layout->setSpacing(0);
    for (QToolButton* action : {copy, inspect, edit, continue_, regenerate_}) actions_layout->addWidget(action);
    header_row_->addWidget(actions_);

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
    stats_->setWordWrap(true);
    note_ = new QLabel(this);
    note_->setObjectName("note");
    note_->setWordWrap(true);
    note_->setVisible(false);
    note_->setForegroundRole(QPalette::PlaceholderText);
    interrupted_label_ = new QLabel(tr("⚠ Interrupted: this reply did not finish (the app was closed or stopped while it was being "
                                       "written). Continue it, or Regenerate a new one."),
                                    this);
    interrupted_label_->setObjectName("interrupted");
    interrupted_label_->setWordWrap(true);
    interrupted_label_->setVisible(false);
    interrupted_label_->setStyleSheet("QLabel { color: #b35c00; }");

    layout_ = new QVBoxLayout(this);
    auto* layout = layout_;
    // The actions move under the header when the column is narrow (resizeEvent), so the width a message needs
    // is its longest single piece, not the header row: minimumSizeHint says so, not the layout.
    layout->setSizeConstraint(QLayout::SetNoConstraint);
    layout->setContentsMargins(10, 6, 10, 6);
    layout->setSpacing(2);
    layout->addLayout(header_row_);
    layout->addWidget(thinking_toggle_);
    layout->addWidget(thinking_);
    images_ = new QHBoxLayout;
    images_->setAlignment(Qt::AlignLeft);
    layout->addLayout(images_);
    layout->addWidget(body_);
    layout->addWidget(interrupted_label_);
    layout->addWidget(note_);
    layout->addWidget(stats_);
}

QSize MessageWidget::minimumSizeHint() const {
    const QMargins m = layout_->contentsMargins();
    const int header = header_->sizeHint().width() + (alternatives_->isVisibleTo(this) ? 3 * alternatives_->sizeHint().width() : 0);
    return {std::max(header, actions_->sizeHint().width()) + m.left() + m.right(), QFrame::minimumSizeHint().height()};
}

void MessageWidget::resizeEvent(QResizeEvent* event) {
    QFrame::resizeEvent(event);
    const QMargins m = layout_->contentsMargins();
    int header = m.left() + m.right() + actions_->sizeHint().width() + 4 * header_row_->spacing();
    for (QWidget* w : {static_cast<QWidget*>(header_), static_cast<QWidget*>(previous_), static_cast<QWidget*>(alternatives_),
                       static_cast<QWidget*>(next_)})
        if (w->isVisibleTo(this)) header += w->sizeHint().width();
    const bool below = width() < header;
    if (below == actions_below_) return;
    actions_below_ = below;
    if (below) {
        header_row_->removeWidget(actions_);
        layout_->insertWidget(1, actions_, 0, Qt::AlignRight);
    } else {
        layout_->removeWidget(actions_);
        header_row_->addWidget(actions_);
    }
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
        set_markdown_wrapped(thinking_, split.thinking);
    }
    set_markdown_wrapped(body_, split.answer.isEmpty() && streaming_ && !split.has_thinking ? QStringLiteral("…") : split.answer);
}

void MessageWidget::set_stats(const app::GenerationStats& stats) {
    stats_->setText(app::stats_line(stats));
    stats_->setVisible(true);
}

void MessageWidget::set_regenerate_visible(bool visible) { regenerate_->setVisible(visible); }

void MessageWidget::set_interrupted(bool interrupted, bool can_continue) {
    interrupted_ = interrupted;
    interrupted_label_->setVisible(interrupted);
    continue_->setVisible(interrupted && can_continue);
}

void MessageWidget::set_alternatives(int index, int count) {
    const bool several = count > 1;
    previous_->setVisible(several);
    alternatives_->setVisible(several);
    next_->setVisible(several);
    alternatives_->setText(QStringLiteral("%1/%2").arg(index + 1).arg(count));
    previous_->setEnabled(index > 0);
    next_->setEnabled(index + 1 < count);
}

QString MessageWidget::alternatives_text() const { return alternatives_->isHidden() ? QString() : alternatives_->text(); }

void MessageWidget::set_note(const QString& note) {
    note_->setText(note);
    note_->setVisible(!note.isEmpty());
}

QString MessageWidget::note_text() const { return note_->isHidden() ? QString() : note_->text(); }
QString MessageWidget::stats_text() const { return stats_->isHidden() ? QString() : stats_->text(); }
QString MessageWidget::answer_text() const { return body_->toPlainText(); }
QString MessageWidget::thinking_text() const { return thinking_->toPlainText(); }
bool MessageWidget::thinking_visible() const { return thinking_toggle_->isVisible(); }

void MessageWidget::set_images(const QStringList& files) {
    while (QLayoutItem* item = images_->takeAt(0)) {
        delete item->widget();
        delete item;
    }
    constexpr int kThumbnail = 160;
    for (const QString& file : files) {
        auto* picture = new QLabel(this);
        picture->setObjectName("messageImage");
        const QImage image(file);
        if (image.isNull()) picture->setText(tr("[image missing: %1]").arg(QFileInfo(file).fileName()));
        else picture->setPixmap(QPixmap::fromImage(image.scaled(kThumbnail, kThumbnail, Qt::KeepAspectRatio, Qt::SmoothTransformation)));
        picture->setToolTip(file);
        images_->addWidget(picture);
    }
}

int MessageWidget::image_count() const { return images_->count(); }

}  // namespace mwb::ui
