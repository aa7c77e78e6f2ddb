// A one-line plain-text label that shortens its text with "…" to the width it is given, instead of making its
// window wider; the whole text is in its tooltip.
#pragma once

#include <QFrame>
#include <QString>

namespace mwb::ui {

class ElidedLabel : public QFrame {
    Q_OBJECT
public:
    explicit ElidedLabel(const QString& text = {}, QWidget* parent = nullptr);

    void setText(const QString& text);
    QString text() const { return text_; }
    QString shownText() const;  // as drawn at the current width

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

protected:
    void paintEvent(QPaintEvent* event) override;

private:
    QString text_;
};

}  // namespace mwb::ui
