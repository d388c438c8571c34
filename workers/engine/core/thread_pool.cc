#include "workers/engine/core/thread_pool.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace squeeze {
namespace {
thread_local bool tls_inside_pool_job = false;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) {
    threads_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (auto& t : threads_) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  for (;;) {
    int64_t begin = 0, end = 0;
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || (job_fn_ != nullptr && next_chunk_ < n_chunks_);
      };
      mu_.Await(absl::Condition(&has_work));
      if (stop_) return;
      const int64_t c = next_chunk_++;
      begin = c * job_chunk_;
      end = std::min(job_n_, begin + job_chunk_);
      fn = job_fn_;
    }
    tls_inside_pool_job = true;
    (*fn)(begin, end);
    tls_inside_pool_job = false;
    absl::MutexLock lock(&mu_);
    ++chunks_done_;
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t min_chunk,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(1, min_chunk);
  if (n_threads_ == 1 || n <= min_chunk || tls_inside_pool_job) {
    fn(0, n);
    return;
  }
  absl::MutexLock run_lock(&run_mu_);
  // Up to 4 chunks per thread balances uneven chunk costs.
  const int64_t target_chunks = std::min<int64_t>(n / min_chunk, int64_t{n_threads_} * 4);
  const int64_t chunk = (n + target_chunks - 1) / target_chunks;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  {
    absl::MutexLock lock(&mu_);
    job_fn_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    next_chunk_ = 0;
    n_chunks_ = n_chunks;
    chunks_done_ = 0;
  }
  // The caller works too.
  for (;;) {
    int64_t c;
    {
      absl::MutexLock lock(&mu_);
      if (next_chunk_ >= n_chunks_) break;
      c = next_chunk_++;
    }
    const int64_t begin = c * chunk;
    tls_inside_pool_job = true;
    fn(begin, std::min(n, begin + chunk));
    tls_inside_pool_job = false;
    absl::MutexLock lock(&mu_);
    ++chunks_done_;
  }
  absl::MutexLock lock(&mu_);
  auto all_done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return chunks_done_ == n_chunks_; };
  mu_.Await(absl::Condition(&all_done));
  job_fn_ = nullptr;
}

ThreadPool& ThreadPool::Default() {
  static ThreadPool pool([] {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("SQUEEZE_THREADS")) {
      const int v = std::atoi(env);
      if (v > 0) n = v;
    }
    return std::max(1, n);
  }());
  return pool;
}

}  // namespace squeeze
