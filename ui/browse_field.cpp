#include "ui/browse_field.h"

#include <QDir>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>

namespace mwb::ui {

QWidget* browse_field(QLineEdit* edit, Browse kind, const QString& caption, const QString& filter) {
    auto* row = new QWidget;
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* browse = new QPushButton(QObject::tr("Browse…"), row);
    layout->addWidget(edit, 1);
    layout->addWidget(browse);
    QObject::connect(browse, &QPushButton::clicked, row, [edit, row, kind, caption, filter] {
        const QString start = edit->text().isEmpty() ? QDir::homePath() : edit->text();
        const QString chosen = kind == Browse::Folder ? QFileDialog::getExistingDirectory(row, caption, start)
                                                      : QFileDialog::getOpenFileName(row, caption, start, filter);
        if (chosen.isEmpty()) return;
        edit->setText(chosen);
        emit edit->editingFinished();
    });
    return row;
}

}  // namespace mwb::ui
