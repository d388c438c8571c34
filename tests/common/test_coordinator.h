// A Coordinator for in-process tests: its SQLite database and a
// LocalObjectStore (objects/) under one directory, the test's clock (a
// ManualClock, say) and no reaper thread (tests expire leases by advancing
// the clock).
//
//   CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
//   o.lease_ttl_ms = 2000;                       // whatever the test needs
//   auto c = test_inputs::OpenTestCoordinator(o);
#pragma once

#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "server/coordinator/coordinator.h"
#include "server/objectstore/local_object_store.h"

namespace squeeze::test_inputs {

inline server::CoordinatorOptions TestCoordinatorOptions(const std::filesystem::path& dir, server::Clock* clock) {
  server::CoordinatorOptions o;
  o.data_dir = dir.string();
  o.clock = clock;
  o.start_reaper = false;
  return o;
}

// Opens the coordinator of `o` with a LocalObjectStore at <o.data_dir>/objects.
inline absl::StatusOr<std::unique_ptr<server::Coordinator>> OpenTestCoordinator(const server::CoordinatorOptions& o) {
  auto objects = store::LocalObjectStore::Open((std::filesystem::path(o.data_dir) / "objects").string());
  if (!objects.ok()) return objects.status();
  return server::Coordinator::Open(o, *std::move(objects));
}

}  // namespace squeeze::test_inputs
