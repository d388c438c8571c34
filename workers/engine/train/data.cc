#include "workers/engine/train/data.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::train {

absl::StatusOr<TokenDataset> LoadTextDataset(const std::vector<TextSource>& sources, const Tokenizer& tokenizer,
                                             const std::string& separator, int seq) {
  if (sources.empty()) return absl::InvalidArgumentError("data: no text files given");
  TokenDataset d;
  for (const TextSource& s : sources) {
    if (!(s.weight > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("data: ", s.path, ": weight must be > 0, got ", s.weight));
    }
    SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(s.path));
    if (s.max_bytes > 0 && static_cast<int64_t>(text.size()) > s.max_bytes) text.resize(s.max_bytes);
    std::vector<int> stream;
    std::vector<std::string> docs;
    if (separator.empty()) {
      docs.push_back(text);
    } else {
      docs = absl::StrSplit(text, separator);
    }
    for (const std::string& doc : docs) {
      if (doc.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      std::vector<int> ids = tokenizer.Encode(doc, true);
      stream.insert(stream.end(), ids.begin(), ids.end());
    }
    if (static_cast<int64_t>(stream.size()) < int64_t{seq} + 1) {
      return absl::InvalidArgumentError(absl::StrCat("data: ", s.path, ": ", stream.size(),
                                                     " tokens, fewer than seq_len + 1 = ", seq + 1));
    }
    d.streams.push_back(std::move(stream));
    d.weights.push_back(s.weight);
  }
  return d;
}

Batch SampleBatch(const TokenDataset& data, int batch, int seq, std::mt19937_64& rng) {
  Batch b;
  b.batch = batch;
  b.seq = seq;
  b.inputs.resize(int64_t{batch} * seq);
  b.targets.resize(int64_t{batch} * seq);
  double total = 0;
  for (double w : data.weights) total += w;
  for (int r = 0; r < batch; ++r) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
    size_t src = 0;
    double acc = data.weights[0];
    while (src + 1 < data.weights.size() && u >= acc) acc += data.weights[++src];
    const std::vector<int>& s = data.streams[src];
    const uint64_t range = s.size() - seq;  // starts [0, len - seq - 1]
    const int64_t start = static_cast<int64_t>(rng() % range);
    for (int i = 0; i < seq; ++i) {
      b.inputs[int64_t{r} * seq + i] = s[start + i];
      b.targets[int64_t{r} * seq + i] = s[start + i + 1];
    }
  }
  return b;
}

}  // namespace squeeze::train
