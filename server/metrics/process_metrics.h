// The standard process_* metrics of Prometheus clients, read from /proc and
// getrusage at scrape time: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_start_time_seconds.
#pragma once

#include "absl/status/status.h"
#include "server/metrics/registry.h"

namespace squeeze::metrics {

// Registers the families and a collect hook that refreshes them.
absl::Status AddProcessMetrics(Registry& registry);

// User + system CPU seconds of this process so far (all threads).
double ProcessCpuSeconds();

}  // namespace squeeze::metrics
