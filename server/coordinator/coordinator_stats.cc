// Coordinator::Stats: the figures behind the scrape-time gauges.
#include <malloc.h>
#include <sqlite3.h>

#include <set>

#include "server/coordinator/coordinator.h"
#include "workers/engine/core/status_macros.h"

// Under AddressSanitizer every malloc goes to ASan's allocator and glibc's
// arenas stay empty (mallinfo2 reports 0 in use), so the heap gauges ask
// ASan's allocator instead (declared here: GCC ships no
// sanitizer/allocator_interface.h): bytes handed out and not freed, and
// bytes the allocator holds free. ASan's count leaves out its large chunks
// (mmapped one by one by its secondary allocator), so it reads lower than
// glibc's uordblks + hblkhd would for the same program.
#if defined(__SANITIZE_ADDRESS__)
#define SQUEEZE_ASAN_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SQUEEZE_ASAN_HEAP 1
#endif
#endif
#ifdef SQUEEZE_ASAN_HEAP
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
extern "C" size_t __sanitizer_get_free_bytes(void);
#endif

namespace squeeze::server {

absl::StatusOr<CoordinatorStats> Coordinator::Stats() {
  CoordinatorStats s;
  if (absl::StatusOr<store::StoreUsage> u = objects_->Usage(); u.ok()) {
    s.stored_blobs = u->blobs;
    s.stored_bytes = u->bytes;
  }
  {
    // A scan of every job: on its own connection, so submits, leases and
    // heartbeats (under mu_) go on meanwhile. WAL gives it a consistent snapshot.
    std::lock_guard<std::mutex> slk(stats_mu_);
    if (!stats_db_) {
      SQ_ASSIGN_OR_RETURN(stats_db_, SqliteDb::Open(options_.data_dir + "/jobs.db"));
    }
    SQ_ASSIGN_OR_RETURN(Statement q,
                        stats_db_->Prepare("SELECT state, requires_gpu, COUNT(*) FROM jobs GROUP BY state, requires_gpu"));
    while (true) {
      SQ_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      const auto state = static_cast<v1::JobState>(q.Int(0));
      const int64_t n = q.Int(2);
      s.jobs_by_state[state] += n;
      if (state == v1::QUEUED) (q.Int(1) != 0 ? s.queued_gpu : s.queued_cpu) += n;
    }
  }
#if defined(SQUEEZE_ASAN_HEAP)
  s.heap_in_use_bytes = static_cast<int64_t>(__sanitizer_get_current_allocated_bytes());
  s.heap_free_bytes = static_cast<int64_t>(__sanitizer_get_free_bytes());
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 mi = ::mallinfo2();
  s.heap_in_use_bytes = static_cast<int64_t>(mi.uordblks + mi.hblkhd);  // arenas + mmapped chunks
  s.heap_free_bytes = static_cast<int64_t>(mi.fordblks);
#endif
  s.sqlite_bytes = static_cast<int64_t>(sqlite3_memory_used());
  std::lock_guard<std::mutex> lk(mu_);
  s.cached_last_seq = static_cast<int64_t>(last_seq_.size());
  s.cached_watchers = static_cast<int64_t>(watchers_.size());
  s.cached_stage_starts = static_cast<int64_t>(stage_start_.size());
  s.registered_workers = static_cast<int64_t>(workers_.size());
  std::set<std::string> busy;
  for (const auto& [id, lease] : leases_) busy.insert(lease.worker_id);
  s.active_leases = static_cast<int64_t>(leases_.size());
  // A polling worker is back within one long-poll (capped at max_lease_wait_ms);
  // a working one heartbeats within a TTL.
  const int64_t now = clock_->MonotonicMs();
  const int64_t horizon = options_.max_lease_wait_ms + options_.lease_ttl_ms;
  for (const auto& [id, w] : workers_) {
    if (busy.count(id)) {
      ++s.workers_busy;
    } else if (now - w.last_seen_ms <= horizon) {
      ++s.workers_idle;
    } else {
      ++s.workers_lost;
    }
  }
  return s;
}

}  // namespace squeeze::server
