// Agreement of a model with a reference model (e.g. the uncompressed one), as
// llama.cpp's `perplexity --kl-divergence` reports it.
//
// The text is tokenized without BOS and cut into chunks of L tokens (the tail
// that does not fill a chunk is dropped); the first token of each chunk is
// replaced by BOS (llama.cpp's add_bos). Both models read the chunk; the
// positions i in [first, L - 1) are scored, i.e. the next-token distributions
// that predict tokens first+1 .. L-1, where first = L / 2 by default
// (llama.cpp: "first" half of the chunk is context only).
// Per position: KL(p_ref || p_model) = sum_v p_ref(v) (log p_ref(v) - log p_model(v))
// in nats, computed in double from log-softmax of the logits; top-1 agreement
// = argmax p_ref == argmax p_model (lowest id on ties).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

struct AgreementOptions {
  int seq_len = 0;          // chunk length L; 0 = min of both models' max_seq_len
  int first_scored = -1;    // first scored row; -1 = L / 2
  int64_t max_chunks = 0;   // 0 = every full chunk
};

struct AgreementResult {
  int64_t positions = 0;  // distributions compared
  int64_t chunks = 0;
  double mean_kl = 0, kl_stderr = 0;  // nats; stderr = sample std / sqrt(n)
  double median_kl = 0, p99_kl = 0, max_kl = 0;  // percentiles: linear interpolation at q*(n-1)
  double top1_agreement = 0, top1_stderr = 0;    // fraction in [0, 1]
  // Perplexity of each model on the scored tokens.
  double reference_perplexity = 0, model_perplexity = 0;
};

// KL(softmax(ref) || softmax(model)) over one row of `vocab` logits, nats.
double KlDivergence(const float* ref_logits, const float* model_logits, int64_t vocab);

// Linear-interpolated quantile q in [0, 1] of `values` (sorted in place).
double Quantile(std::vector<double>& values, double q);

// InvalidArgument when the vocabularies differ or the text is shorter than
// one chunk.
absl::StatusOr<AgreementResult> EvaluateAgreement(const Model& reference, const Model& model,
                                                  const Tokenizer& tokenizer, const std::string& text,
                                                  const AgreementOptions& options,
                                                  ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
