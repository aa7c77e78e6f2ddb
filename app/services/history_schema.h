// The schema of the history database as forward migrations: step i takes a database from user_version i to
// i + 1. Released steps never change; a new table or column is a new step (and RunDatabase::kSchemaVersion + 1).
#pragma once

namespace mwb::app {

extern const char* const kHistoryMigrations[];

}  // namespace mwb::app
