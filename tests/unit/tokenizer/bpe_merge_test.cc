#include "workers/engine/tokenizer/bpe_merge.h"

#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace squeeze {
namespace {

// A random merge table over a small alphabet; few distinct keys so that ties
// (the leftmost-pair rule) happen often.
TEST(BpeMerge, HeapMatchesReferenceOnRandomInputs) {
  std::mt19937 rng(1234);
  int merged_total = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::map<std::pair<int, int>, PairMerge> table;
    int next_symbol = 6;
    for (int k = 0; k < 40; ++k) {
      const int a = rng() % next_symbol, b = rng() % next_symbol;
      table.emplace(std::make_pair(a, b),
                    PairMerge{static_cast<double>(rng() % 5), next_symbol++});
    }
    const auto lookup = [&](int a, int b) -> std::optional<PairMerge> {
      auto it = table.find({a, b});
      if (it == table.end()) return std::nullopt;
      return it->second;
    };
    std::vector<int> s(1 + rng() % 200);
    for (int& x : s) x = rng() % 6;
    std::vector<int> fast = s, ref = s;
    MergeByPriority(&fast, lookup);
    MergeByPriorityReference(&ref, lookup);
    ASSERT_EQ(fast, ref) << "trial " << trial;
    merged_total += static_cast<int>(s.size() - fast.size());
  }
  EXPECT_GT(merged_total, 1000);  // the inputs really did merge
}

TEST(BpeMerge, TiesGoToTheLeftmostPair) {
  // x x x with "xx" -> 9: the left pair merges first.
  const auto lookup = [](int a, int b) -> std::optional<PairMerge> {
    if (a == 1 && b == 1) return PairMerge{0.0, 9};
    return std::nullopt;
  };
  for (int n : {3, 11}) {  // the rescan path and the heap path
    std::vector<int> s(n, 1);
    MergeByPriority(&s, lookup);
    std::vector<int> want(n / 2, 9);
    if (n % 2) want.push_back(1);
    EXPECT_EQ(s, want) << n;
  }
}

}  // namespace
}  // namespace squeeze
