#include "app/services/image_store.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QSaveFile>

#include "app/services/run_database.h"

namespace mwb::app {

namespace {

bool is_sha256(const QString& text) {
    static const QRegularExpression hex(QStringLiteral("^[0-9a-f]{64}$"));
    return hex.match(text).hasMatch();
}

}  // namespace

Result<QString> ImageStore::add(const QString& image_file) const {
    QFile source(image_file);
    if (!source.open(QIODevice::ReadOnly))
        return make_error((QFileInfo(image_file).fileName() + ": the image cannot be read: " + source.errorString()).toStdString());
    const QByteArray bytes = source.readAll();
    const QString sha256 = QString::fromLatin1(QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex());
    if (!path(sha256).isEmpty()) return sha256;
    if (!QDir().mkpath(folder_)) return make_error(("cannot create the image folder " + folder_).toStdString());
    const QString suffix = QFileInfo(image_file).suffix().toLower();
    QSaveFile target(QDir(folder_).filePath(sha256 + (suffix.isEmpty() ? QString() : "." + suffix)));
    if (!target.open(QIODevice::WriteOnly) || target.write(bytes) != bytes.size() || !target.commit())
        return make_error(("cannot store the image in " + folder_ + ": " + target.errorString()).toStdString());
    return sha256;
}

QString ImageStore::path(const QString& sha256) const {
    if (!is_sha256(sha256)) return {};
    const QStringList found = QDir(folder_).entryList({sha256 + "*"}, QDir::Files);
    return found.isEmpty() ? QString() : QDir(folder_).filePath(found.first());
}

void ImageStore::remove(const QStringList& sha256s) const {
    for (const QString& sha256 : sha256s)
        if (const QString file = path(sha256); !file.isEmpty()) QFile::remove(file);
}

Status delete_run_and_images(RunDatabase& db, const ImageStore& images, qint64 run_id) {
    auto unused = db.delete_run(run_id);
    if (!unused) return unused.error();
    images.remove(*unused);
    return Status::success();
}

}  // namespace mwb::app
