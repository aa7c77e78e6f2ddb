#include "ui/conversation_list.h"

#include <QHBoxLayout>
#include <QInputDialog>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QTimer>
#include <QVBoxLayout>

#include "app/services/image_store.h"

namespace mwb::ui {

ConversationList::ConversationList(AppContext& context, QWidget* parent) : QWidget(parent), context_(context) {
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
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(new_button);
    layout->addWidget(search_);
    layout->addWidget(conversations_, 1);
    layout->addLayout(list_buttons);

    refresh_timer_ = new QTimer(this);
    refresh_timer_->setSingleShot(true);
    refresh_timer_->setInterval(100);
    connect(new_button, &QPushButton::clicked, this, &ConversationList::newChatRequested);
    connect(rename_button, &QPushButton::clicked, this, &ConversationList::rename_current);
    connect(delete_button, &QPushButton::clicked, this, &ConversationList::delete_selected);
    connect(search_, &QLineEdit::textChanged, refresh_timer_, qOverload<>(&QTimer::start));
    connect(refresh_timer_, &QTimer::timeout, this, &ConversationList::refresh);
    auto open = [this](QListWidgetItem* item) { emit openRequested(item->data(Qt::UserRole).toLongLong()); };
    connect(conversations_, &QListWidget::itemActivated, this, open);
    connect(conversations_, &QListWidget::itemClicked, this, open);
    connect(conversations_, &QListWidget::customContextMenuRequested, this, [this](const QPoint& at) {
        if (!conversations_->itemAt(at)) return;
        QMenu menu(this);
        menu.addAction(tr("Rename…"), this, &ConversationList::rename_current);
        menu.addAction(tr("Delete…"), this, &ConversationList::delete_selected);
        menu.exec(conversations_->viewport()->mapToGlobal(at));
    });
    connect(&context_.storage, &app::Storage::runsChanged, refresh_timer_, qOverload<>(&QTimer::start));
    connect(&context_.storage, &app::Storage::opened, this, &ConversationList::refresh);
}

void ConversationList::set_current(qint64 run_id) {
    current_ = run_id;
    conversations_->clearSelection();
    for (int i = 0; i < conversations_->count(); ++i)
        if (conversations_->item(i)->data(Qt::UserRole).toLongLong() == run_id) conversations_->setCurrentRow(i);
}

void ConversationList::refresh() {
    app::RunFilter filter;
    filter.kind = "chat";
    filter.text = search_->text().trimmed();
    context_.storage.request<QList<app::RunRecord>>([filter](app::RunDatabase& db) { return db.list_runs(filter); }, this,
                                                    [this](const QList<app::RunRecord>& runs) {
                                                        conversations_->clear();
                                                        for (const app::RunRecord& run : runs) {
                                                            auto* item = new QListWidgetItem(run.title, conversations_);
                                                            item->setData(Qt::UserRole, run.id);
                                                            item->setToolTip(run.title + "\n" +
                                                                             run.updated_at.toString(QLocale().dateTimeFormat(QLocale::ShortFormat)));
                                                            if (run.id == current_) conversations_->setCurrentItem(item);
                                                        }
                                                    });
}

void ConversationList::rename_current() {
    QListWidgetItem* item = conversations_->currentItem();
    if (!item) return;
    bool ok = false;
    const QString title = QInputDialog::getText(this, tr("Rename conversation"), tr("Title:"), QLineEdit::Normal, item->text(), &ok).trimmed();
    if (!ok || title.isEmpty()) return;
    const qint64 id = item->data(Qt::UserRole).toLongLong();
    item->setText(title);
    context_.storage.write([id, title](app::RunDatabase& db) { return db.rename_run(id, title); });
}

void ConversationList::delete_selected() {
    QListWidgetItem* item = conversations_->currentItem();
    if (!item) return;
    const qint64 id = item->data(Qt::UserRole).toLongLong();
    if (QMessageBox::question(this, tr("Delete conversation"),
                              tr("Delete “%1” and all its messages from the history? This cannot be undone.").arg(item->text())) !=
        QMessageBox::Yes)
        return;
    emit deleting(id);
    if (id == context_.settings.last_chat()) context_.settings.set_last_chat(0);
    delete item;
    const app::ImageStore images(context_.settings.image_directory());
    context_.storage.write([id, images](app::RunDatabase& db) { return app::delete_run_and_images(db, images, id); });
}

}  // namespace mwb::ui
