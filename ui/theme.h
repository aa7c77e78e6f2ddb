// Light and dark palettes on the Fusion style, the same on every desktop.
#pragma once

#include "app/services/settings.h"

namespace mwb::ui {

void apply_theme(app::Theme theme);

}  // namespace mwb::ui
