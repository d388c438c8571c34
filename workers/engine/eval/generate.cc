#include "workers/engine/eval/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int SampleToken(const float* logits, int vocab, float temperature, float top_p, std::mt19937_64& rng) {
  if (temperature <= 0.0f) return static_cast<int>(std::max_element(logits, logits + vocab) - logits);
  const float mx = *std::max_element(logits, logits + vocab);
  std::vector<double> p(vocab);
  double sum = 0;
  for (int i = 0; i < vocab; ++i) {
    p[i] = std::exp((double{logits[i]} - mx) / temperature);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  int keep = vocab;
  if (top_p > 0.0f && top_p < 1.0f) {
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    double mass = 0;
    for (keep = 0; keep < vocab;) {
      mass += p[order[keep++]];
      if (mass >= top_p) break;
    }
  }
  double kept = 0;
  for (int i = 0; i < keep; ++i) kept += p[order[i]];
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * kept;
  double cum = 0;
  for (int i = 0; i < keep; ++i) {
    cum += p[order[i]];
    if (u < cum) return order[i];
  }
  return order[keep - 1];
}

absl::StatusOr<GenerateResult> Generate(const Model& model, const Tokenizer& tokenizer,
                                        const std::vector<int>& prompt_ids, const GenerateOptions& options,
                                        const std::function<void(int id, const std::string& piece)>& on_token,
                                        ThreadPool& pool) {
  if (prompt_ids.empty()) return absl::InvalidArgumentError("generate: the prompt has no tokens");
  if (options.max_tokens < 0) return absl::InvalidArgumentError("generate: max_tokens must be >= 0");
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("generate: top_p must be in (0, 1], got ", options.top_p));
  }
  const int ctx = model.config.max_seq_len;
  if (static_cast<int>(prompt_ids.size()) >= ctx) {
    return absl::InvalidArgumentError(absl::StrCat("generate: the prompt has ", prompt_ids.size(),
                                                   " tokens, the context length is ", ctx));
  }
  const int eos = tokenizer.eos_id() >= 0 ? tokenizer.eos_id() : model.config.eos_token_id;
  const int bos = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : model.config.bos_token_id;
  std::mt19937_64 rng(options.seed);
  GenerateResult r;
  r.prompt_ids = prompt_ids;
  r.stop_reason = "max_tokens";
  KVCache cache(model, ctx);
  MatrixRM logits;
  auto t0 = std::chrono::steady_clock::now();
  SQ_RETURN_IF_ERROR(Forward(model, prompt_ids, 0, cache, logits, false, pool));
  r.prefill_seconds = SecondsSince(t0);
  int pos = static_cast<int>(prompt_ids.size());
  int prev = prompt_ids.back();
  const int vocab = static_cast<int>(logits.cols());
  for (int step = 0; step < options.max_tokens; ++step) {
    const int next = SampleToken(logits.data(), vocab, options.temperature, options.top_p, rng);
    if (options.stop_at_eos && next == eos) {
      r.stop_reason = "eos";
      break;
    }
    if (options.stop_at_eos && next == bos) {
      r.stop_reason = "bos";
      break;
    }
    r.ids.push_back(next);
    std::string piece = tokenizer.DecodePiece(prev, next);
    r.text += piece;
    if (on_token) on_token(next, piece);
    prev = next;
    if (step + 1 == options.max_tokens) break;
    if (pos >= ctx) {
      r.stop_reason = "context_full";
      break;
    }
    t0 = std::chrono::steady_clock::now();
    SQ_RETURN_IF_ERROR(Forward(model, absl::MakeConstSpan(&next, 1), pos, cache, logits, false, pool));
    r.decode_seconds += SecondsSince(t0);
    ++pos;
  }
  return r;
}

}  // namespace squeeze
