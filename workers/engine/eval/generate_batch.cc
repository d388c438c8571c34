#include "workers/engine/eval/generate_batch.h"

#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward_batch.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One running sequence.
struct Stream {
  KVCache cache;
  std::mt19937_64 rng;
  std::vector<float> logits;  // after its last fed token
  int pos = 0;                // position of the next token to feed
  int prev = 0;               // last token (for DecodePiece)
  int next = 0;               // token fed in the coming step
  bool done = false;
};

}  // namespace

absl::StatusOr<std::vector<GenerateResult>> GenerateBatch(const Model& model, const Tokenizer& tokenizer,
                                                          const std::vector<std::vector<int>>& prompts,
                                                          const GenerateOptions& options, ThreadPool& pool) {
  if (prompts.empty()) return absl::InvalidArgumentError("generate: no prompts");
  if (options.max_tokens < 0) return absl::InvalidArgumentError("generate: max_tokens must be >= 0");
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("generate: top_p must be in (0, 1], got ", options.top_p));
  }
  const int ctx = model.config.max_seq_len;
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty()) return absl::InvalidArgumentError(absl::StrCat("generate: prompt ", b, " has no tokens"));
    if (static_cast<int>(prompts[b].size()) >= ctx) {
      return absl::InvalidArgumentError(absl::StrCat("generate: prompt ", b, " has ", prompts[b].size(),
                                                     " tokens, the context length is ", ctx));
    }
  }
  const int eos = tokenizer.eos_id() >= 0 ? tokenizer.eos_id() : model.config.eos_token_id;
  const int bos = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : model.config.bos_token_id;
  const size_t n = prompts.size();
  std::vector<GenerateResult> results(n);
  std::vector<Stream> streams(n);
  std::vector<BatchSequence> seqs(n);
  for (size_t b = 0; b < n; ++b) {
    streams[b].cache = KVCache(model, ctx);
    streams[b].rng.seed(options.seed);
    results[b].prompt_ids = prompts[b];
    results[b].stop_reason = "max_tokens";
    seqs[b] = {prompts[b], 0, &streams[b].cache};
  }
  ForwardBatchScratch scratch;
  MatrixRM logits;
  auto t0 = std::chrono::steady_clock::now();
  SQ_RETURN_IF_ERROR(ForwardBatch(model, seqs, logits, /*all_logits=*/false, pool, &scratch));
  const double prefill = SecondsSince(t0);
  const int vocab = static_cast<int>(logits.cols());
  for (size_t b = 0; b < n; ++b) {
    results[b].prefill_seconds = prefill;
    streams[b].logits.assign(logits.row(b).data(), logits.row(b).data() + vocab);
    streams[b].pos = static_cast<int>(prompts[b].size());
    streams[b].prev = prompts[b].back();
  }
  // Step `step` of every running sequence: sample, stop or queue its token.
  std::vector<size_t> running;
  for (int step = 0; step < options.max_tokens; ++step) {
    running.clear();
    for (size_t b = 0; b < n; ++b) {
      Stream& s = streams[b];
      if (s.done) continue;
      GenerateResult& r = results[b];
      const int next = SampleToken(s.logits.data(), vocab, options.temperature, options.top_p, s.rng);
      s.done = true;
      if (options.stop_at_eos && next == eos) {
        r.stop_reason = "eos";
        continue;
      }
      if (options.stop_at_eos && next == bos) {
        r.stop_reason = "bos";
        continue;
      }
      r.ids.push_back(next);
      r.text += tokenizer.DecodePiece(s.prev, next);
      s.prev = next;
      if (step + 1 == options.max_tokens) continue;
      if (s.pos >= ctx) {
        r.stop_reason = "context_full";
        continue;
      }
      s.done = false;
      s.next = next;
      running.push_back(b);
    }
    if (running.empty()) break;
    seqs.resize(running.size());
    for (size_t i = 0; i < running.size(); ++i) {
      Stream& s = streams[running[i]];
      seqs[i] = {absl::MakeConstSpan(&s.next, 1), s.pos, &s.cache};
    }
    t0 = std::chrono::steady_clock::now();
    SQ_RETURN_IF_ERROR(ForwardBatch(model, seqs, logits, /*all_logits=*/false, pool, &scratch));
    const double sec = SecondsSince(t0);
    for (size_t i = 0; i < running.size(); ++i) {
      Stream& s = streams[running[i]];
      s.logits.assign(logits.row(i).data(), logits.row(i).data() + vocab);
      ++s.pos;
      results[running[i]].decode_seconds += sec;
    }
  }
  return results;
}

}  // namespace squeeze
