// Training data: text files tokenized into token streams, and seeded
// sampling of fixed-length windows (mixed over sources by weight).
//
// Each source is a file; its text is split into documents at `separator`
// (when non-empty) and every document is encoded with BOS first, then all
// are concatenated into one stream. A batch row is a window of seq + 1
// consecutive tokens: inputs = window[0, seq), targets = window[1, seq].
// Sampling (for a given rng state, bit-identical on every machine): for each
// row, u = rng() picks the source by cumulative weight (u / 2^64 compared
// against the normalised cumulative weights), then rng() % (len - seq) picks
// the window start.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze::train {

struct TextSource {
  std::string path;
  double weight = 1.0;
  int64_t max_bytes = 0;  // 0 = whole file; else only the first max_bytes bytes
};

struct TokenDataset {
  std::vector<std::vector<int>> streams;  // one per source
  std::vector<double> weights;
};

// Reads and tokenizes every source. Errors name the file: missing, empty, or
// fewer than seq + 1 tokens (too short for one window), weight <= 0.
absl::StatusOr<TokenDataset> LoadTextDataset(const std::vector<TextSource>& sources, const Tokenizer& tokenizer,
                                             const std::string& separator, int seq);

struct Batch {
  int batch = 0, seq = 0;
  std::vector<int> inputs;   // [batch * seq]
  std::vector<int> targets;  // [batch * seq]
};

Batch SampleBatch(const TokenDataset& data, int batch, int seq, std::mt19937_64& rng);

}  // namespace squeeze::train
