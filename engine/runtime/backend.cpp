#include "engine/runtime/backend.h"

#include <cstdint>
#include <string>

namespace mwb {

Status check_embedding_overrides(const EmbeddingOverrides& overrides, int64_t total, int64_t hidden) {
    if (overrides.values.size() != overrides.rows.size() * size_t(hidden))
        return make_error("the embedding overrides hold " + std::to_string(overrides.values.size()) + " values for " +
                          std::to_string(overrides.rows.size()) + " rows of " + std::to_string(hidden));
    for (int64_t row : overrides.rows)
        if (row < 0 || row >= total)
            return make_error("embedding override row " + std::to_string(row) + " is outside the " + std::to_string(total) + " tokens it is given for");
    return Status::success();
}

}  // namespace mwb
