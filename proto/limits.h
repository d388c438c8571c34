// Transport limits of the squeeze.v1 API, chosen deliberately and shared by the
// coordinator, the worker and the client library.
#pragma once

#include <cstdint>

namespace squeeze::api {

// Byte streams (UploadModel, DownloadArtifact) move in chunks of at most 1 MiB:
// large enough to amortise per-message overhead, small enough to keep memory
// per stream bounded and to resume at a fine grain.
inline constexpr int64_t kChunkBytes = 1 << 20;
// No single message may exceed 16 MiB (a chunk plus headroom; recipes, reports
// and event batches are far smaller).
inline constexpr int kMaxMessageBytes = 16 << 20;
// Deadline clients put on unary calls.
inline constexpr int64_t kUnaryDeadlineMs = 10'000;
// WatchJob re-checks the client's cancellation at least this often.
inline constexpr int64_t kWatchPollMs = 1'000;

}  // namespace squeeze::api
