// Measured inference latency of a model on this machine, with the kernels
// that serve it (the model's forward pass with KV caches: ForwardBatch of
// model/forward_batch.h, the same blocks and linear kernels that `squeeze
// generate` runs through the single-sequence Forward).
//
// Protocol, for each batch size B in options.batch_sizes:
//  - B sequences of prompt_len token ids drawn uniformly from [0, vocab) by a
//    std::mt19937_64 seeded with options.seed (the ids do not change the
//    work: every forward does the same matmuls whatever the ids).
//  - One repetition = prefill, then decode_tokens steps.
//    Batched (options.batched, the default): prefill is ONE ForwardBatch of
//    the B prompts (B * prompt_len rows through every linear at once,
//    last-token logits only); a decode step is ONE ForwardBatch of B tokens,
//    each sequence fed its own greedy next token at its own cache. Every
//    linear layer thus runs one matmul over the B rows of a step; attention
//    runs per sequence against its own cache.
//    Sequential (batched = false, the pre-batching protocol kept for
//    comparison): the B sequences run one after another, one Forward each
//    for the prefill and per decode step.
//  - `warmup` repetitions are run and discarded, then repetitions are timed
//    (steady_clock) until `repetitions` are done, or, after at least one,
//    until max_seconds of timed work have passed for this batch size.
//  - Prefill figures: per repetition, ms per token = prefill time / (B *
//    prompt_len); reported: median and p90 over repetitions, and tokens/s =
//    1000 / median ms per token.
//  - Decode figures: per step, ms per token = step time / B; reported: p50
//    and p90 over every timed step of every repetition (linear-interpolated
//    quantiles), tokens/s = 1000 / p50 (tokens of all B streams together).
// Each LatencyPoint records which protocol produced it (`batched`).
//
// Memory: model_bytes = ComputeModelCost(model).bytes_total (weights as held
// in memory: packed layers at their packed size); kv_cache_bytes = the caches
// of the largest batch; peak_rss_bytes = the process's VmHWM read after the
// measurement, having reset it (write "5" to /proc/self/clear_refs) just
// before, so it is the peak resident set of the process *during* the
// measurement (the model, caches, activations and whatever else the process
// holds); -1 where /proc is unavailable. rss_before_bytes = VmRSS before.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"

namespace squeeze {

struct LatencyOptions {
  std::vector<int> batch_sizes = {1, 8};
  int prompt_len = 64;     // prefill tokens per sequence (>= 1)
  int decode_tokens = 32;  // decode steps per sequence (>= 1)
  // prompt_len + decode_tokens must fit the model's context (max_seq_len).
  int warmup = 1;
  int repetitions = 5;        // timed repetitions at most (>= 1)
  double max_seconds = 10.0;  // per batch size; stops repeating after >= 1 timed repetition
  uint64_t seed = 0;
  // true: one ForwardBatch per prefill / decode step (see above); false: the
  // B sequences one after another (the sequential baseline).
  bool batched = true;
};

struct LatencyPoint {
  int batch = 0;
  bool batched = true;  // measured with ForwardBatch (LatencyOptions::batched)
  int prompt_len = 0, decode_tokens = 0;
  int repetitions = 0;  // timed repetitions done
  double prefill_ms_per_token_p50 = 0, prefill_ms_per_token_p90 = 0;
  double prefill_tokens_per_s = 0;  // 1000 / prefill p50
  double decode_ms_per_token_p50 = 0, decode_ms_per_token_p90 = 0;
  double decode_tokens_per_s = 0;   // 1000 / decode p50
  int64_t decode_steps = 0;         // timed steps behind the decode quantiles
};

struct LatencyResult {
  std::vector<LatencyPoint> points;  // one per batch size, in order
  int threads = 0;                   // ThreadPool size used
  int64_t model_bytes = 0;
  int64_t kv_cache_bytes = 0;
  int64_t rss_before_bytes = -1;
  int64_t peak_rss_bytes = -1;
};

// VmRSS / VmHWM of this process in bytes from /proc/self/status; -1 when unknown.
int64_t CurrentRssBytes();
int64_t PeakRssBytes();
// Resets VmHWM to the current RSS (Linux >= 4.0); false when not possible.
bool ResetPeakRss();

// InvalidArgument naming the option for bad options (batch < 1, prompt_len <
// 1, decode_tokens < 1, prompt_len + decode_tokens > max_seq_len, ...).
absl::StatusOr<LatencyResult> MeasureLatency(const Model& model, const LatencyOptions& options,
                                             ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
