#include "app/services/demo_model.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QSaveFile>

#include "engine/model/config.h"
#include "engine/model/random_weights.h"

// Resources of a static library must be registered by name from outside any namespace.
static void register_demo_resources() { Q_INIT_RESOURCE(resources); }

namespace mwb::app {

namespace {

constexpr quint64 kReleaseSeed = 20250120;  // DeepSeek-R1's release date

QByteArray read_resource(const QString& name) {
    register_demo_resources();
    QFile file(":/demo_model/" + name);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

QByteArray recipe_fingerprint(const DemoModelRecipe& recipe) {
    QCryptographicHash hash(QCryptographicHash::Sha256);
    hash.addData(QJsonDocument(recipe.config).toJson(QJsonDocument::Compact));
    hash.addData(QByteArray::number(recipe.seed));
    return hash.result().toHex();
}

Status write_file(const QString& path, const QByteArray& bytes) {
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(bytes) != bytes.size() || !file.commit())
        return make_error(("cannot write " + path + ": " + file.errorString()).toStdString());
    return Status::success();
}

Error cancelled() { return make_error("creating the demo model was cancelled"); }

}  // namespace

DemoModelRecipe standard_demo_recipe() {
    return {QJsonDocument::fromJson(read_resource("config.json")).object(), kReleaseSeed};
}

Result<QString> ensure_demo_model(const QString& directory, const DemoModelRecipe& recipe, const std::function<void(double)>& progress,
                                  const std::atomic<bool>* cancel) {
    auto report = [&](double fraction) { if (progress) progress(fraction); };
    auto is_cancelled = [&] { return cancel && cancel->load(); };
    const QByteArray fingerprint = recipe_fingerprint(recipe);
    QFile marker(QDir(directory).filePath("demo_model.json"));
    if (marker.open(QIODevice::ReadOnly) &&
        QJsonDocument::fromJson(marker.readAll()).object().value("recipe").toString().toLatin1() == fingerprint) {
        report(1.0);
        return directory;
    }
    marker.close();

    const QString staging = QDir::cleanPath(directory) + ".partial";
    QDir(staging).removeRecursively();
    if (!QDir().mkpath(staging)) return make_error(("cannot create " + staging + ": check that the data directory is writable").toStdString());
    const QDir out(staging);

    const QByteArray tokenizer = qUncompress(read_resource("tokenizer.json.qz"));
    if (tokenizer.isEmpty()) return make_error("the bundled DeepSeek-V3 tokenizer is missing or damaged in this build of MoE Workbench");
    MWB_TRY(write_file(out.filePath("tokenizer.json"), tokenizer));
    for (const char* name : {"tokenizer_config.json", "generation_config.json", "LICENSE.tokenizer"})
        MWB_TRY(write_file(out.filePath(name), read_resource(name)));
    MWB_TRY(write_file(out.filePath("config.json"), QJsonDocument(recipe.config).toJson()));
    report(0.1);
    if (is_cancelled()) return cancelled();

    auto config = load_model_config(staging.toStdString());
    if (!config) return config.error();
    const auto tensors = random_weights(*config, recipe.seed);
    report(0.5);
    if (is_cancelled()) return cancelled();
    MWB_TRY(write_safetensors(out.filePath("model.safetensors").toStdString(), tensors, {{"format", "pt"}}));
    report(0.9);

    const QJsonObject label{
        {"label", "MoE Workbench demo model: DeepSeek-V3 architecture with random weights. It produces gibberish; "
                  "open a real model on the Models page."},
        {"seed", QString::number(recipe.seed)},
        {"recipe", QString::fromLatin1(fingerprint)},
    };
    MWB_TRY(write_file(out.filePath("demo_model.json"), QJsonDocument(label).toJson()));

    QDir(directory).removeRecursively();
    if (!QDir().mkpath(QFileInfo(directory).absolutePath()) || !QDir().rename(staging, directory))
        return make_error(("cannot move the demo model into " + directory).toStdString());
    report(1.0);
    return directory;
}

}  // namespace mwb::app
