// The services every page talks to. They live as long as the main window; pages hold references.
#pragma once

#include "app/services/demo_model.h"
#include "app/services/engine_worker.h"
#include "app/services/settings.h"
#include "app/services/storage.h"

namespace mwb::ui {

struct AppContext {
    app::Settings& settings;
    app::Storage& storage;
    app::EngineHost& engine;
    app::DemoModelRecipe demo_recipe;  // what to create when there is no model
};

}  // namespace mwb::ui
