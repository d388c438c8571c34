// Text generation for several prompts at once with the batched forward
// (model/forward_batch.h): the prompts are prefilled in one ForwardBatch and
// every decode step is one ForwardBatch over the sequences still running
// (finished ones leave the batch), each with its own KV cache.
//
// Per sequence the rules are Generate's (generate.h): the same options, the
// same stop reasons, and its own std::mt19937_64 seeded with options.seed,
// so sequence b's result is what Generate(prompts[b]) gives on its own up to
// the fp32 summation order of the batched linears (ForwardBatch's logits
// match Forward's to ~1e-5 relative; a greedy pick or a sampled draw can
// only differ where two candidates are that close). The plain reference is
// Generate itself; tests compare the two.
// Timing: prefill_seconds is the batched prefill's wall time (shared by all
// sequences); decode_seconds sums the wall time of the batched steps the
// sequence took part in.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/eval/generate.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

// One result per prompt, in order. InvalidArgument (naming the prompt index)
// for no prompts, an empty prompt, a prompt that fills the context, or bad
// options (as Generate).
absl::StatusOr<std::vector<GenerateResult>> GenerateBatch(const Model& model, const Tokenizer& tokenizer,
                                                          const std::vector<std::vector<int>>& prompts,
                                                          const GenerateOptions& options,
                                                          ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
