#include "app/services/training_params.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace mwb::app {

namespace {
const char* schedule_name(train::Schedule schedule) {
    return schedule == train::Schedule::Linear ? "linear" : schedule == train::Schedule::Cosine ? "cosine" : "constant";
}
}  // namespace

QString training_params_json(const TrainingJob& job) {
    QFile data(job.data_path);
    QCryptographicHash hash(QCryptographicHash::Sha256);
    if (data.open(QIODevice::ReadOnly)) hash.addData(&data);
    QJsonArray targets;
    for (const std::string& t : job.lora.target_modules) targets.append(QString::fromStdString(t));
    const train::TrainOptions& o = job.options;
    const QJsonObject params{{"data", job.data_path},
                             {"data_sha256", QString::fromLatin1(hash.result().toHex())},
                             {"tokenizer", job.tokenizer_directory},
                             {"cutoff", qint64(job.data.cutoff)},
                             {"train_on_prompt", job.data.train_on_prompt},
                             {"validation_split", job.validation_split},
                             {"targets", targets},
                             {"rank", qint64(job.lora.rank)},
                             {"alpha", job.lora.alpha},
                             {"dropout", job.lora.dropout},
                             {"rslora", job.lora.rslora},
                             {"lr", o.optimizer.lr},
                             {"beta1", o.optimizer.beta1},
                             {"beta2", o.optimizer.beta2},
                             {"eps", o.optimizer.eps},
                             {"weight_decay", o.optimizer.weight_decay},
                             {"schedule", schedule_name(o.schedule)},
                             {"epochs", o.epochs},
                             {"steps", qint64(o.steps)},
                             {"batch", qint64(o.batch)},
                             {"gradient_accumulation", qint64(o.gradient_accumulation)},
                             {"warmup", qint64(o.warmup_steps)},
                             {"clip", o.max_grad_norm},
                             {"shuffle", o.shuffle},
                             {"seed", QString::number(o.seed)},
                             {"checkpoint_every", qint64(o.checkpoint_every)},
                             {"gradient_checkpointing", job.gradient_checkpointing},
                             {"device", job.cuda ? "cuda" : "cpu"},
                             {"output", QString::fromStdString(o.output_directory)}};
    return QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Compact));
}

Result<TrainingJob> training_job_from_params(const QString& model_directory, const QString& params_json) {
    const QJsonObject p = QJsonDocument::fromJson(params_json.toUtf8()).object();
    if (!p.contains("output") || !p.contains("data") || !p.contains("targets"))
        return make_error("the run's settings in the history are incomplete, so it cannot be resumed");
    TrainingJob job;
    job.model_directory = model_directory;
    job.tokenizer_directory = p["tokenizer"].toString();
    job.data_path = p["data"].toString();
    job.data.cutoff = p["cutoff"].toInteger(job.data.cutoff);
    job.data.train_on_prompt = p["train_on_prompt"].toBool();
    job.validation_split = p["validation_split"].toDouble();
    for (const QJsonValue& t : p["targets"].toArray()) job.lora.target_modules.push_back(t.toString().toStdString());
    job.lora.rank = p["rank"].toInteger(job.lora.rank);
    job.lora.alpha = p["alpha"].toDouble(job.lora.alpha);
    job.lora.dropout = p["dropout"].toDouble();
    job.lora.rslora = p["rslora"].toBool();
    train::TrainOptions& o = job.options;
    o.optimizer.lr = p["lr"].toDouble(o.optimizer.lr);
    o.optimizer.beta1 = p["beta1"].toDouble(o.optimizer.beta1);
    o.optimizer.beta2 = p["beta2"].toDouble(o.optimizer.beta2);
    o.optimizer.eps = p["eps"].toDouble(o.optimizer.eps);
    o.optimizer.weight_decay = p["weight_decay"].toDouble(o.optimizer.weight_decay);
    auto schedule = train::parse_schedule(p["schedule"].toString("constant").toStdString());
    if (!schedule) return schedule.error();
    o.schedule = *schedule;
    o.epochs = p["epochs"].toDouble(o.epochs);
    o.steps = p["steps"].toInteger();
    o.batch = p["batch"].toInteger(o.batch);
    o.gradient_accumulation = p["gradient_accumulation"].toInteger(o.gradient_accumulation);
    o.warmup_steps = p["warmup"].toInteger();
    o.max_grad_norm = p["clip"].toDouble();
    o.shuffle = p["shuffle"].toBool(true);
    o.seed = p["seed"].toString().toULongLong();
    o.checkpoint_every = p["checkpoint_every"].toInteger();
    o.output_directory = p["output"].toString().toStdString();
    o.base_model = model_directory.toStdString();
    job.gradient_checkpointing = p["gradient_checkpointing"].toBool();
    job.cuda = p["device"].toString() == "cuda";
    return job;
}

Status record_training_artifact(RunDatabase& db, qint64 run_id, const QString& kind, const QString& path) {
    auto run = db.run(run_id);
    if (!run) return run.error();
    QJsonObject params = QJsonDocument::fromJson(run->params_json.toUtf8()).object();
    QJsonArray list = params[kind].toArray();
    if (!list.contains(path)) list.append(path);
    params[kind] = list;
    return db.set_run_params(run_id, QString::fromUtf8(QJsonDocument(params).toJson(QJsonDocument::Compact)));
}

QString latest_checkpoint(const QString& output_directory) {
    QString best;
    qint64 best_step = -1;
    for (const QString& name : QDir(output_directory).entryList({"checkpoint-*"}, QDir::Dirs)) {
        const qint64 step = train::checkpoint_step(name.toStdString());
        // The trainer state is written last: a checkpoint without it was cut short.
        if (step >= 0 && step > best_step && QFile::exists(QDir(output_directory).filePath(name + "/trainer_state.json"))) {
            best_step = step;
            best = QDir(output_directory).filePath(name);
        }
    }
    return best;
}

}  // namespace mwb::app
