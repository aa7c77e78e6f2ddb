// A cited page: the PDF page or image drawn with the cited passage highlighted, or for a text file its text
// with the passage marked; the document's name and page, and a button that opens the file itself.
#pragma once

#include <QWidget>

#include "app/documents/page_view.h"
#include "app/services/chat_types.h"

class QLabel;
class QPushButton;
class QScrollArea;
class QSlider;
class QTextBrowser;

namespace mwb::ui {

class PageViewer : public QWidget {
    Q_OBJECT
public:
    explicit PageViewer(QWidget* parent = nullptr);

    void show_loading(const app::CitedSource& source);
    void show_page(const app::CitedSource& source, const app::PageView& view);
    void show_error(const QString& message);
    // The page as drawn, highlight included (for tests and screenshots).
    QImage rendered() const { return rendered_; }

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void redraw();

    app::CitedSource source_;
    app::PageView view_;
    QImage rendered_;
    QLabel* title_;
    QScrollArea* scroll_;
    QLabel* picture_;
    QTextBrowser* text_;
    QSlider* zoom_;
    QPushButton* open_file_;
};

}  // namespace mwb::ui
