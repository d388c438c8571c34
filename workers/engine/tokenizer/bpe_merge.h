// The merge loop shared by every BPE tokenizer here: repeatedly merge the
// adjacent pair of symbols with the lowest key (ties: the leftmost pair) until
// no adjacent pair has a merge. llama2.c uses key = -score of the merged
// piece; Hugging Face BPE uses key = merge rank.
//
// MergeByPriority is the O(n log n) heap version; MergeByPriorityReference is
// the plain O(n^2) rescan loop of llama2.c's run.c. They give identical
// results (tests/unit/tokenizer/bpe_merge_test.cc).
#pragma once

#include <optional>
#include <queue>
#include <vector>

namespace squeeze {

// What merging two adjacent symbols gives.
struct PairMerge {
  double key;  // lower merges first
  int merged;  // the symbol that replaces the pair
};

// `lookup(left, right)` returns std::optional<PairMerge>; symbols are ints
// (negative ones are allowed; lookup decides whether they merge).
template <typename Lookup>
void MergeByPriorityReference(std::vector<int>* symbols, const Lookup& lookup) {
  std::vector<int>& s = *symbols;
  while (s.size() > 1) {
    int best = -1;
    PairMerge best_merge{0.0, 0};
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const std::optional<PairMerge> m = lookup(s[i], s[i + 1]);
      if (m && (best < 0 || m->key < best_merge.key)) {
        best = static_cast<int>(i);
        best_merge = *m;
      }
    }
    if (best < 0) break;
    s[best] = best_merge.merged;
    s.erase(s.begin() + best + 1);
  }
}

template <typename Lookup>
void MergeByPriority(std::vector<int>* symbols, const Lookup& lookup) {
  std::vector<int>& s = *symbols;
  const int n = static_cast<int>(s.size());
  if (n < 2) return;
  if (n <= 8) {  // the rescan is cheaper for tiny words
    MergeByPriorityReference(symbols, lookup);
    return;
  }
  // Doubly linked list over the original positions; a merged symbol keeps the
  // position of its left part, so positions stay in text order.
  std::vector<int> prev(n), next(n), version(n, 0);
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    double key;
    int left, right;
    int left_version, right_version;
    int merged;
  };
  const auto worse = [](const Candidate& a, const Candidate& b) {
    if (a.key != b.key) return a.key > b.key;
    return a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(worse)> heap(worse);
  const auto push = [&](int left) {
    if (left < 0) return;
    const int right = next[left];
    if (right < 0) return;
    const std::optional<PairMerge> m = lookup(s[left], s[right]);
    if (m) heap.push({m->key, left, right, version[left], version[right], m->merged});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
        version[c.left] != c.left_version || version[c.right] != c.right_version) {
      continue;  // stale: one side has changed since this pair was queued
    }
    s[c.left] = c.merged;
    ++version[c.left];
    alive[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
  int out = 0;
  for (int i = 0; i >= 0; i = next[i]) s[out++] = s[i];
  s.resize(out);
}

}  // namespace squeeze
