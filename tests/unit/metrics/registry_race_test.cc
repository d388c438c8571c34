// Registry: of several threads registering the same metric name at once,
// exactly one gets the family and the rest AlreadyExists; the winner's
// pointer stays the one rendered (no family is replaced behind its back).
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/metrics/registry.h"

namespace squeeze::metrics {
namespace {

TEST(RegistryRace, ConcurrentRegistrationsOfOneNameHaveOneWinner) {
  constexpr int kNames = 50, kThreads = 6;
  Registry reg;
  std::vector<std::atomic<Family<Counter>*>> winners(kNames);
  std::vector<std::atomic<int>> wins(kNames), clashes(kNames);
  std::atomic<int> go{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      ++go;
      while (go.load() < kThreads) {
      }
      for (int i = 0; i < kNames; ++i) {
        auto f = reg.AddCounter("race_" + std::to_string(i) + "_total", "A counter.");
        if (f.ok()) {
          ++wins[i];
          winners[i] = *f;
        } else if (f.status().code() == absl::StatusCode::kAlreadyExists) {
          ++clashes[i];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kNames; ++i) {
    EXPECT_EQ(wins[i].load(), 1) << i;
    EXPECT_EQ(clashes[i].load(), kThreads - 1) << i;
    winners[i].load()->Get().Increment(i + 1);
  }
  // Every winner's increments show: its family is the registered one.
  const std::string text = reg.Render();
  for (int i = 0; i < kNames; ++i) {
    EXPECT_NE(text.find("race_" + std::to_string(i) + "_total " + std::to_string(i + 1) + "\n"), std::string::npos)
        << i;
  }
}

}  // namespace
}  // namespace squeeze::metrics
