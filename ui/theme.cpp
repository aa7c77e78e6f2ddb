#include "ui/theme.h"

#include <QApplication>
#include <QPalette>
#include <QStyle>
#include <QStyleFactory>

namespace mwb::ui {

void apply_theme(app::Theme theme) {
    QApplication::setStyle(QStyleFactory::create("Fusion"));
    QPalette palette = QApplication::style()->standardPalette();
    if (theme == app::Theme::Dark) {
        const QColor window(37, 39, 43), base(28, 30, 33), text(226, 228, 232), accent(76, 139, 245);
        palette.setColor(QPalette::Window, window);
        palette.setColor(QPalette::WindowText, text);
        palette.setColor(QPalette::Base, base);
        palette.setColor(QPalette::AlternateBase, window);
        palette.setColor(QPalette::ToolTipBase, base);
        palette.setColor(QPalette::ToolTipText, text);
        palette.setColor(QPalette::Text, text);
        palette.setColor(QPalette::Button, window);
        palette.setColor(QPalette::ButtonText, text);
        palette.setColor(QPalette::BrightText, Qt::white);
        palette.setColor(QPalette::Link, accent.lighter(120));
        palette.setColor(QPalette::Highlight, accent);
        palette.setColor(QPalette::HighlightedText, Qt::white);
        palette.setColor(QPalette::PlaceholderText, QColor(140, 144, 150));
        palette.setColor(QPalette::Disabled, QPalette::Text, QColor(120, 124, 130));
        palette.setColor(QPalette::Disabled, QPalette::ButtonText, QColor(120, 124, 130));
        palette.setColor(QPalette::Disabled, QPalette::WindowText, QColor(120, 124, 130));
    }
    QApplication::setPalette(palette);
}

}  // namespace mwb::ui
