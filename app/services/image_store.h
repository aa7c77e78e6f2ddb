// Images attached to messages, kept beside the history: one file per distinct image, named by the SHA-256 of its
// bytes (so the same picture attached twice is stored once) with its own suffix, under the data folder.
#pragma once

#include <QString>
#include <QStringList>

#include "engine/core/result.h"

namespace mwb::app {

class ImageStore {
public:
    explicit ImageStore(QString folder) : folder_(std::move(folder)) {}

    // Copies the image file into the store (once per content); the value is its SHA-256, the name messages use.
    Result<QString> add(const QString& image_file) const;
    // The stored file of `sha256`; empty when it is not there (removed by hand, or never stored).
    QString path(const QString& sha256) const;
    // Deletes the files of these images (those no message refers to any more).
    void remove(const QStringList& sha256s) const;
    QString folder() const { return folder_; }

private:
    QString folder_;
};

class RunDatabase;

// Deletes a run from the history, then the image files that only its messages used.
Status delete_run_and_images(RunDatabase& db, const ImageStore& images, qint64 run_id);

}  // namespace mwb::app
