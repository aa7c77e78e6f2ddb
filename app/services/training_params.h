// A training run's settings as the run history keeps them (JSON in the run's params), and back: what lets the
// app resume a run that a crash or a kill interrupted.
#pragma once

#include <QString>

#include "app/services/run_database.h"
#include "app/services/training_worker.h"

namespace mwb::app {

// The job's settings, the dataset path and its SHA-256.
QString training_params_json(const TrainingJob& job);
// The job those settings describe, for the model folder of the run.
Result<TrainingJob> training_job_from_params(const QString& model_directory, const QString& params_json);
// Records a file a run produced — `kind` is "checkpoints", "exports" or "merges" — in the run's params.
Status record_training_artifact(RunDatabase& db, qint64 run_id, const QString& kind, const QString& path);

// The checkpoint-N folder with the highest N that holds a complete checkpoint, or empty.
QString latest_checkpoint(const QString& output_directory);

}  // namespace mwb::app
