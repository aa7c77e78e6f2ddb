// One optimizer step of a training run as the UI shows it and the run history keeps it.
#pragma once

#include <QMetaType>
#include <QtGlobal>

namespace mwb::app {

struct TrainingStep {
    qint64 step = 0, total_steps = 0;
    double loss = 0, learning_rate = 0, grad_norm = 0, seconds = 0;
    qint64 tokens = 0;
    double validation_loss = -1;  // < 0: not measured at this step
};

}  // namespace mwb::app

Q_DECLARE_METATYPE(mwb::app::TrainingStep)
