// service_bench: load on a running coordinator over loopback (run_bench.sh
// starts one). Bounded: a fixed number of submissions and watch streams.
//   1. submit: N SubmitJob calls from C client threads -> submissions/s and
//      p50 / p99 latency (every submit is a durable SQLite commit);
//   2. watch: W concurrent WatchJob streams on W jobs, then every job is
//      cancelled; each stream must deliver exactly its events (QUEUED,
//      CANCELLED) -> time to open the streams and to fan the cancels out.
// Figures are printed; nothing is asserted on time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "client/lib/service_client.h"

namespace {
using Clock = std::chrono::steady_clock;
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: service_bench ADDR MODEL_DIGEST [SUBMITS=2000] [THREADS=8] [WATCHERS=200]\n");
    return 2;
  }
  const std::string addr = argv[1], model = argv[2];
  const int n = argc > 3 ? std::atoi(argv[3]) : 2000;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 8;
  const int watchers = argc > 5 ? std::atoi(argv[5]) : 200;

  // ---- 1. submissions
  std::vector<std::vector<double>> lat(threads);
  std::atomic<int> next{0}, errors{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      squeeze::client::ServiceClient c(addr);  // one channel per client thread
      for (int i; (i = next.fetch_add(1)) < n;) {
        squeeze::v1::SubmitJobRequest r;
        r.set_recipe_yaml("bench_stage:\n  sparsity_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5}\n");
        r.set_model_digest(model);
        r.set_idempotency_key("bench-" + std::to_string(i));
        const auto s = Clock::now();
        auto j = c.Submit(r);
        lat[t].push_back(Ms(Clock::now() - s));
        if (!j.ok()) {
          if (errors++ == 0) std::fprintf(stderr, "submit: %s\n", j.status().ToString().c_str());
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  const double submit_s = Ms(Clock::now() - t0) / 1000;
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::printf("submit: %d jobs, %d client threads: %.0f submissions/s, latency p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
              "errors %d\n",
              n, threads, n / submit_s, Pct(all, 0.50), Pct(all, 0.99), Pct(all, 1.0), errors.load());

  // ---- 2. watch streams
  squeeze::client::ServiceClient c(addr);
  std::vector<std::string> jobs;
  for (int i = 0; i < watchers; ++i) {
    squeeze::v1::SubmitJobRequest r;
    r.set_recipe_yaml("w:\n  m_modifiers:\n    MagnitudePruningModifier: {sparsity: 0.5}\n");
    r.set_model_digest(model);
    auto j = c.Submit(r);
    if (!j.ok()) {
      std::fprintf(stderr, "submit for watch: %s\n", j.status().ToString().c_str());
      return 1;
    }
    jobs.push_back(j->job_id());
  }
  std::atomic<int> opened{0}, finished{0}, bad{0};
  std::vector<std::thread> ws;
  const auto w0 = Clock::now();
  for (int i = 0; i < watchers; ++i) {
    ws.emplace_back([&, i] {
      squeeze::client::ServiceClient wc(addr);
      int events = 0;
      bool first = true;
      absl::Status s = wc.Watch(jobs[i], 0, [&](const squeeze::v1::JobEvent& e) {
        if (first) {
          opened++;
          first = false;
        }
        events++;
        return true;
      });
      if (!s.ok() || events != 2) bad++;
      finished++;
    });
  }
  while (opened < watchers) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double open_ms = Ms(Clock::now() - w0);
  const auto c0 = Clock::now();
  for (const auto& j : jobs) (void)c.Cancel(j);
  const double cancel_ms = Ms(Clock::now() - c0);
  for (auto& th : ws) th.join();
  const double fanout_ms = Ms(Clock::now() - c0);
  std::printf("watch: %d concurrent WatchJob streams opened in %.0f ms; %d cancels issued in %.0f ms; all streams "
              "delivered their final event %.0f ms after the first cancel; streams with wrong event count: %d\n",
              watchers, open_ms, watchers, cancel_ms, fanout_ms, bad.load());
  return errors == 0 && bad == 0 ? 0 : 1;
}
