#include "workers/engine/eval/agreement.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/eval/tasks.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {
namespace {

// log-softmax of one row in double; returns the argmax (lowest id on ties).
int64_t LogSoftmax(const float* l, int64_t vocab, std::vector<double>& out) {
  out.resize(vocab);
  int64_t best = 0;
  for (int64_t c = 1; c < vocab; ++c) {
    if (l[c] > l[best]) best = c;
  }
  const double mx = l[best];
  double sum = 0;
  for (int64_t c = 0; c < vocab; ++c) sum += std::exp(double{l[c]} - mx);
  const double lse = mx + std::log(sum);
  for (int64_t c = 0; c < vocab; ++c) out[c] = double{l[c]} - lse;
  return best;
}

double Kl(const std::vector<double>& lp_ref, const std::vector<double>& lp) {
  double kl = 0;
  for (size_t c = 0; c < lp_ref.size(); ++c) kl += std::exp(lp_ref[c]) * (lp_ref[c] - lp[c]);
  return std::max(kl, 0.0);  // rounding can give -1e-17
}

}  // namespace

double KlDivergence(const float* ref_logits, const float* model_logits, int64_t vocab) {
  std::vector<double> a, b;
  LogSoftmax(ref_logits, vocab, a);
  LogSoftmax(model_logits, vocab, b);
  return Kl(a, b);
}

double Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

absl::StatusOr<AgreementResult> EvaluateAgreement(const Model& reference, const Model& model,
                                                  const Tokenizer& tokenizer, const std::string& text,
                                                  const AgreementOptions& options, ThreadPool& pool) {
  if (reference.config.vocab_size != model.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("agreement: vocabularies differ (reference ",
                                                   reference.config.vocab_size, ", model ",
                                                   model.config.vocab_size, ")"));
  }
  const int L = options.seq_len > 0 ? options.seq_len
                                    : std::min(reference.config.max_seq_len, model.config.max_seq_len);
  const int first = options.first_scored >= 0 ? options.first_scored : L / 2;
  if (L < 2 || first > L - 2) {
    return absl::InvalidArgumentError(absl::StrCat("agreement: seq_len ", L, " / first_scored ", first,
                                                   " leave no position to score"));
  }
  const std::vector<int> tokens = tokenizer.Encode(text, false);
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / L;
  if (options.max_chunks > 0) n_chunks = std::min(n_chunks, options.max_chunks);
  if (n_chunks == 0) {
    return absl::InvalidArgumentError(absl::StrCat("agreement: the text has ", tokens.size(),
                                                   " tokens, fewer than one chunk of ", L));
  }
  const int prefix = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : tokenizer.eos_id();
  KVCache cache_ref(reference, L), cache(model, L);
  MatrixRM logits_ref, logits;
  std::vector<double> kls, top1, lp_ref, lp;
  double nll_ref = 0, nll = 0;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    std::vector<int> input(tokens.begin() + ch * L, tokens.begin() + (ch + 1) * L);
    if (prefix >= 0) input[0] = prefix;
    SQ_RETURN_IF_ERROR(Forward(reference, input, 0, cache_ref, logits_ref, true, pool));
    SQ_RETURN_IF_ERROR(Forward(model, input, 0, cache, logits, true, pool));
    const int64_t V = logits.cols();
    for (int i = first; i < L - 1; ++i) {
      const int64_t a = LogSoftmax(logits_ref.data() + i * V, V, lp_ref);
      const int64_t b = LogSoftmax(logits.data() + i * V, V, lp);
      kls.push_back(Kl(lp_ref, lp));
      top1.push_back(a == b ? 1.0 : 0.0);
      nll_ref -= lp_ref[input[i + 1]];
      nll -= lp[input[i + 1]];
    }
  }
  AgreementResult r;
  r.chunks = n_chunks;
  r.positions = static_cast<int64_t>(kls.size());
  std::tie(r.mean_kl, r.kl_stderr) = MeanAndStderr(kls);
  std::tie(r.top1_agreement, r.top1_stderr) = MeanAndStderr(top1);
  r.reference_perplexity = std::exp(nll_ref / static_cast<double>(r.positions));
  r.model_perplexity = std::exp(nll / static_cast<double>(r.positions));
  r.median_kl = Quantile(kls, 0.5);
  r.p99_kl = Quantile(kls, 0.99);
  r.max_kl = kls.back();  // sorted by Quantile
  return r;
}

}  // namespace squeeze
