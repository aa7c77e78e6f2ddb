#include "ui/placeholder_page.h"

#include <QLabel>
#include <QVBoxLayout>

namespace mwb::ui {

PlaceholderPage::PlaceholderPage(const QString& title, const QString& description, QWidget* parent) : QWidget(parent) {
    auto* heading = new QLabel(QStringLiteral("<h2>%1</h2>").arg(title.toHtmlEscaped()));
    auto* text = new QLabel(description);
    text->setWordWrap(true);
    text->setTextFormat(Qt::RichText);
    auto* coming = new QLabel(tr("<i>Coming in a later release of MoE Workbench.</i>"));
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(heading);
    layout->addWidget(text);
    layout->addWidget(coming);
    layout->addStretch();
    layout->setContentsMargins(24, 24, 24, 24);
}

}  // namespace mwb::ui
