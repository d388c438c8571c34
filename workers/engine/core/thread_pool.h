// A fixed pool of worker threads with a blocking ParallelFor. The engine's one
// source of parallelism: kernels split their rows over it, and everything else
// runs on the calling thread. The calling thread takes part in the work.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace squeeze {

class ThreadPool {
 public:
  // n_threads counts the caller: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), each at least
  // min_chunk long (except the last), and returns when all are done.
  // Chunks are contiguous and deterministic for a given (n, size(), min_chunk),
  // so results that depend on chunking are reproducible. Nested calls from
  // inside fn run inline.
  void ParallelFor(int64_t n, int64_t min_chunk,
                   const std::function<void(int64_t begin, int64_t end)>& fn);

  // The process-wide pool, sized by SQUEEZE_THREADS or the number of cores.
  static ThreadPool& Default();

 private:
  void WorkerLoop(int index);

  const int n_threads_;
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  // The job being run: chunks [0, n_chunks_) of job_chunk_ indices each.
  const std::function<void(int64_t, int64_t)>* job_fn_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t job_n_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t job_chunk_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_chunk_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t n_chunks_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t chunks_done_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex run_mu_;  // serialises concurrent ParallelFor callers
};

}  // namespace squeeze
