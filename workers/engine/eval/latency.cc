#include "workers/engine/eval/latency.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/eval/agreement.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/forward_batch.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// A "Vm...:   123 kB" line of /proc/self/status in bytes, -1 when absent.
int64_t ProcStatusBytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    try {
      return static_cast<int64_t>(std::stoll(line.substr(key.size() + 1))) * 1024;
    } catch (...) {
      return -1;
    }
  }
  return -1;
}

int Argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

}  // namespace

int64_t CurrentRssBytes() { return ProcStatusBytes("VmRSS"); }
int64_t PeakRssBytes() { return ProcStatusBytes("VmHWM"); }

bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

absl::StatusOr<LatencyResult> MeasureLatency(const Model& model, const LatencyOptions& options,
                                             ThreadPool& pool) {
  const int max_seq = model.config.max_seq_len;
  if (options.batch_sizes.empty()) return absl::InvalidArgumentError("latency.batch_sizes: empty");
  for (int b : options.batch_sizes) {
    if (b < 1) return absl::InvalidArgumentError(absl::StrCat("latency.batch_sizes: ", b, " is not >= 1"));
  }
  if (options.prompt_len < 1) return absl::InvalidArgumentError("latency.prompt_len: must be >= 1");
  if (options.decode_tokens < 1) return absl::InvalidArgumentError("latency.decode_tokens: must be >= 1");
  if (options.prompt_len + options.decode_tokens > max_seq) {
    return absl::InvalidArgumentError(absl::StrCat("latency.prompt_len + decode_tokens = ",
                                                   options.prompt_len + options.decode_tokens,
                                                   " exceeds the model's context length ", max_seq));
  }
  if (options.repetitions < 1) return absl::InvalidArgumentError("latency.repetitions: must be >= 1");
  if (options.warmup < 0) return absl::InvalidArgumentError("latency.warmup: must be >= 0");
  const int vocab = model.config.vocab_size;
  const int ctx = options.prompt_len + options.decode_tokens;

  LatencyResult result;
  result.threads = pool.size();
  result.model_bytes = ComputeModelCost(model).bytes_total;
  result.rss_before_bytes = CurrentRssBytes();
  const bool reset = ResetPeakRss();

  std::mt19937_64 rng(options.seed);
  std::uniform_int_distribution<int> id(0, vocab - 1);
  for (int batch : options.batch_sizes) {
    std::vector<std::vector<int>> prompts(batch, std::vector<int>(options.prompt_len));
    for (auto& p : prompts) {
      for (int& t : p) t = id(rng);
    }
    std::vector<KVCache> caches;
    caches.reserve(batch);
    for (int b = 0; b < batch; ++b) caches.emplace_back(model, ctx);
    int64_t kv = 0;
    for (const KVCache& c : caches) kv += c.bytes();
    result.kv_cache_bytes = std::max(result.kv_cache_bytes, kv);
    MatrixRM logits;
    std::vector<int> next(batch), tokens(batch);
    std::vector<BatchSequence> seqs(batch);
    ForwardBatchScratch scratch;  // activations reused across steps, as a server would
    std::vector<double> prefill_ms, decode_ms;
    double timed_ms = 0;
    int timed = 0;
    for (int rep = 0; rep < options.warmup + options.repetitions; ++rep) {
      const bool warm = rep < options.warmup;
      if (!warm && timed >= 1 && timed_ms >= options.max_seconds * 1000.0) break;
      const auto t0 = Clock::now();
      if (options.batched) {
        for (int b = 0; b < batch; ++b) seqs[b] = {prompts[b], 0, &caches[b]};
        SQ_RETURN_IF_ERROR(ForwardBatch(model, seqs, logits, /*all_logits=*/false, pool, &scratch));
        for (int b = 0; b < batch; ++b) next[b] = Argmax(&logits(b, 0), vocab);
      } else {
        for (int b = 0; b < batch; ++b) {
          SQ_RETURN_IF_ERROR(Forward(model, prompts[b], 0, caches[b], logits, /*all_logits=*/false, pool));
          next[b] = Argmax(logits.data(), vocab);
        }
      }
      const auto t1 = Clock::now();
      std::vector<double> steps;
      steps.reserve(options.decode_tokens);
      for (int s = 0; s < options.decode_tokens; ++s) {
        const auto s0 = Clock::now();
        if (options.batched) {
          // One batched forward of B tokens (the tokens are copied first:
          // `next` is overwritten with the step's output).
          tokens = next;
          for (int b = 0; b < batch; ++b) {
            seqs[b] = {absl::MakeConstSpan(&tokens[b], 1), options.prompt_len + s, &caches[b]};
          }
          SQ_RETURN_IF_ERROR(ForwardBatch(model, seqs, logits, /*all_logits=*/false, pool, &scratch));
          for (int b = 0; b < batch; ++b) next[b] = Argmax(&logits(b, 0), vocab);
        } else {
          for (int b = 0; b < batch; ++b) {
            const int tok = next[b];
            SQ_RETURN_IF_ERROR(Forward(model, absl::MakeConstSpan(&tok, 1), options.prompt_len + s, caches[b],
                                       logits, /*all_logits=*/false, pool));
            next[b] = Argmax(logits.data(), vocab);
          }
        }
        steps.push_back(Ms(s0, Clock::now()) / batch);
      }
      const auto t2 = Clock::now();
      if (warm) continue;
      ++timed;
      timed_ms += Ms(t0, t2);
      prefill_ms.push_back(Ms(t0, t1) / (static_cast<double>(batch) * options.prompt_len));
      decode_ms.insert(decode_ms.end(), steps.begin(), steps.end());
    }
    LatencyPoint p;
    p.batch = batch;
    p.batched = options.batched;
    p.prompt_len = options.prompt_len;
    p.decode_tokens = options.decode_tokens;
    p.repetitions = timed;
    p.decode_steps = static_cast<int64_t>(decode_ms.size());
    p.prefill_ms_per_token_p50 = Quantile(prefill_ms, 0.5);
    p.prefill_ms_per_token_p90 = Quantile(prefill_ms, 0.9);
    p.prefill_tokens_per_s = p.prefill_ms_per_token_p50 > 0 ? 1000.0 / p.prefill_ms_per_token_p50 : 0;
    p.decode_ms_per_token_p50 = Quantile(decode_ms, 0.5);
    p.decode_ms_per_token_p90 = Quantile(decode_ms, 0.9);
    p.decode_tokens_per_s = p.decode_ms_per_token_p50 > 0 ? 1000.0 / p.decode_ms_per_token_p50 : 0;
    result.points.push_back(p);
  }
  result.peak_rss_bytes = reset ? PeakRssBytes() : -1;
  return result;
}

}  // namespace squeeze
