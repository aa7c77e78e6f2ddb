// The images about to be sent with a chat message: an Attach button, drag and drop and paste add them, each
// shows as a thumbnail with a button that takes it off again. Pasted pictures are written to a scratch file so
// that every attachment is a file the image store can copy.
#pragma once

#include <QStringList>
#include <QTemporaryDir>
#include <QWidget>

class QHBoxLayout;
class QLabel;
class QMimeData;
class QPushButton;

namespace mwb::ui {

class AttachmentBar : public QWidget {
    Q_OBJECT
public:
    explicit AttachmentBar(QWidget* parent = nullptr);

    // Adds the image files among `paths`; other files are refused with a message.
    void add_files(const QStringList& paths);
    // Takes the images (files, or a picture) that a drop or a paste carries; false when it carries none.
    bool add_mime(const QMimeData* mime);
    QStringList files() const { return files_; }
    QStringList take();  // the attachments, leaving the bar empty
    // Whether the loaded model can see images: without, the bar says so and refuses attachments.
    void set_vision_available(bool available, const QString& model_name);

signals:
    void changed();
    void statusMessage(QString text);

private:
    void rebuild();

    QStringList files_;
    bool vision_ = false;
    QString model_name_;
    QTemporaryDir pasted_;  // pictures pasted from the clipboard
    int pasted_count_ = 0;
    QPushButton* attach_;
    QHBoxLayout* thumbnails_;
    QLabel* hint_;
};

// Image files the app can attach (as QImageReader reads them).
bool is_image_file(const QString& path);

}  // namespace mwb::ui
