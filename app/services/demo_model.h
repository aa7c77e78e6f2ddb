// The built-in demo model: a tiny DeepSeek-V3-architecture checkpoint with random weights, written
// deterministically from a seed, with the real DeepSeek-V3 tokenizer, so that the app works offline at once.
#pragma once

#include <QJsonObject>
#include <QString>
#include <atomic>
#include <functional>

#include "engine/core/result.h"

namespace mwb::app {

struct DemoModelRecipe {
    QJsonObject config;  // config.json
    quint64 seed = 0;
};

// resources/demo_model/config.json with the release seed.
DemoModelRecipe standard_demo_recipe();

// Writes the demo model into `directory` unless the same recipe is already there, and returns the directory.
// The folder is built beside the target and renamed into place, so a killed process never leaves half a model.
// `progress` gets a fraction in [0, 1]; `cancel` stops between steps.
Result<QString> ensure_demo_model(const QString& directory, const DemoModelRecipe& recipe,
                                  const std::function<void(double)>& progress = {},
                                  const std::atomic<bool>* cancel = nullptr);

}  // namespace mwb::app
