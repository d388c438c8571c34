// Zero-shot task scoring as lm-evaluation-harness does it.
//
// Task files: MosaicML llm-foundry local-data JSONL (one object per line):
//   multiple choice  {"query", "choices": [..], "gold"}: candidate i =
//                    (query, delimiter + choices[i]); acc_norm length = the
//                    characters of choices[i] (no delimiter), as lm-eval's
//                    len(choice).
//   schema           {"context_options": [..], "continuation", "gold"}:
//                    candidate i = (context_options[i], delimiter +
//                    continuation) — the contexts differ, the scored text is
//                    shared, so acc_norm == acc by construction.
//   language model   {"context", "continuation"} (LAMBADA): one candidate
//                    (context, delimiter + continuation); acc = every
//                    continuation token is the greedy (argmax) prediction;
//                    perplexity = exp(-mean over examples of the
//                    continuation's total log-likelihood) (lm-eval's
//                    lambada "perplexity"), plus a per-token perplexity.
// The delimiter is " " by default (../shared/data/README.md).
//
// Tokenization (lm-eval's _encode_pair, its default): trailing whitespace of
// the context moves to the start of the continuation; whole =
// Encode(context + continuation), ctx = Encode(context), continuation tokens =
// whole[len(ctx):]. The model reads prefix + ctx + continuation[:-1], where
// prefix = [BOS] when options.add_bos (default; llama2.c / Llama checkpoints
// are trained with BOS at document start, as llama.cpp evaluates them), else
// nothing — lm-eval's HF default (add_bos_token=False) — except that an empty
// context becomes [EOS] (lm-eval's prefix token; BOS if there is no EOS).
// Inputs longer than the context length are cut from the left as lm-eval does:
// (ctx + cont)[-(L+1):][:-1].
//
// The log-likelihood of a continuation is the sum of log softmax(logits)[t]
// over its tokens (double precision). acc picks argmax of the sums, acc_norm
// argmax of sum / characters; ties go to the lowest index (numpy argmax).
// stderr is lm-eval's: sample standard deviation (ddof = 1) / sqrt(n).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/model/model.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze {

enum class TaskFormat { kMultipleChoice, kSchema, kLanguageModeling };
const char* TaskFormatName(TaskFormat f);  // "multiple_choice" | "schema" | "language_modeling"

struct TaskExample {
  // (context, continuation) per candidate; the continuation already carries
  // the delimiter. Language modelling has exactly one candidate.
  std::vector<std::pair<std::string, std::string>> candidates;
  // Characters (UTF-8 code points) acc_norm divides by, one per candidate.
  std::vector<int64_t> norm_chars;
  int gold = 0;
};

struct Task {
  std::string name;  // e.g. "arc_easy"
  TaskFormat format = TaskFormat::kMultipleChoice;
  std::vector<TaskExample> examples;
};

// Parses one JSONL line (`where` names it in errors, e.g. "piqa.jsonl:12").
absl::StatusOr<TaskExample> ParseTaskLine(absl::string_view line, const std::string& delimiter,
                                          const std::string& where, TaskFormat* format);

// Reads a task file; the format comes from the first line's keys and every
// line must have it. limit > 0 keeps the first `limit` examples. Empty lines
// are skipped. The task name is the file name without ".jsonl".
// A path ending in ".txt" is a cloze text file (BuildClozeTask) named after
// its directory plus "_cloze": tinystories/valid.txt -> "tinystories_cloze".
absl::StatusOr<Task> LoadTaskFile(const std::string& path, int64_t limit = 0, const std::string& delimiter = " ");

// A LAMBADA-style cloze task built from plain text (e.g. ../shared/data/
// tinystories/valid.txt). Stories are separated by lines that are exactly
// "<|endoftext|>" (surrounding whitespace ignored); each story is trimmed and
// gives at most one example: its last word (the last run of ASCII letters and
// apostrophes inside the text, so trailing punctuation and quotes such as
// `end."` are not part of it) is the continuation (delimiter + word) and the
// text before it, trailing whitespace removed, is the context. A story is
// skipped when that word is not preceded by whitespace (e.g. `"Yes!"`), so
// that context + delimiter + word is exactly the story's text up to the word,
// or when the context has fewer than `min_context_words` words. Format:
// language modelling (scored as LAMBADA: greedy-exact acc, perplexity).
// limit > 0 keeps the first `limit` examples. InvalidArgument: no examples.
absl::StatusOr<Task> BuildClozeTask(absl::string_view text, const std::string& name, int64_t limit = 0,
                                    const std::string& delimiter = " ", int min_context_words = 8);
// Reads `path` and builds its cloze task named `name`.
absl::StatusOr<Task> LoadClozeTextFile(const std::string& path, const std::string& name, int64_t limit = 0,
                                       const std::string& delimiter = " ");

// UTF-8 code points of s (bytes that are not continuation bytes).
int64_t Utf8Chars(absl::string_view s);

struct EncodedCandidate {
  std::vector<int> context;       // prefix + context tokens (non-empty)
  std::vector<int> continuation;  // non-empty
};
// lm-eval's split (see the header comment). InvalidArgument when the
// continuation has no tokens.
absl::StatusOr<EncodedCandidate> EncodeCandidate(const Tokenizer& tokenizer, const std::string& context,
                                                 const std::string& continuation, bool add_bos);

struct ContinuationScore {
  double logprob = 0;   // sum of the continuation tokens' log-probabilities (nats)
  int64_t tokens = 0;   // continuation tokens scored
  bool greedy = false;  // every token is the argmax prediction
};

struct TaskOptions {
  bool add_bos = true;
  int seq_len = 0;  // context length L; 0 = model.config.max_seq_len
  // (examples done, total) after each example.
  std::function<void(int64_t, int64_t)> progress;
};

// Scores each candidate's continuation. Fast path: one KV cache; the tokens a
// candidate shares with the previous candidate's input (the common prefix: the
// whole context for multiple choice, the text before the option for schema)
// are not recomputed, and the head runs only on the rows that are scored.
absl::StatusOr<std::vector<ContinuationScore>> ScoreCandidates(const Model& model,
                                                              const std::vector<EncodedCandidate>& candidates,
                                                              const TaskOptions& options,
                                                              ThreadPool& pool = ThreadPool::Default());
// Plain reference: a fresh full forward (all logits) per candidate.
absl::StatusOr<std::vector<ContinuationScore>> ScoreCandidatesReference(
    const Model& model, const std::vector<EncodedCandidate>& candidates, const TaskOptions& options,
    ThreadPool& pool = ThreadPool::Default());

struct TaskResult {
  std::string name;
  TaskFormat format = TaskFormat::kMultipleChoice;
  int64_t n = 0;
  double acc = 0, acc_stderr = 0;
  double acc_norm = 0, acc_norm_stderr = 0;  // == acc for language modelling
  // Language modelling only (0 otherwise):
  double perplexity = 0;            // exp(-mean per-example log-likelihood)
  double token_perplexity = 0;      // exp(-sum ll / sum tokens)
  std::vector<int> predictions;     // acc's choice per example (LM: 1 greedy-correct, 0 not)
  std::vector<int> norm_predictions;
};

// Mean and lm-eval stderr (sample std, ddof 1, / sqrt(n); 0 when n < 2).
std::pair<double, double> MeanAndStderr(const std::vector<double>& x);

absl::StatusOr<TaskResult> EvaluateTask(const Model& model, const Tokenizer& tokenizer, const Task& task,
                                        const TaskOptions& options, ThreadPool& pool = ThreadPool::Default());

}  // namespace squeeze
