#include "workers/engine/eval/tasks.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {
namespace {

// log p(target) and whether target is the argmax (lowest id on ties) of one
// logits row.
std::pair<double, bool> TokenLogProb(const float* l, int64_t vocab, int target) {
  int64_t best = 0;
  for (int64_t c = 1; c < vocab; ++c) {
    if (l[c] > l[best]) best = c;
  }
  const double mx = l[best];
  double sum = 0;
  for (int64_t c = 0; c < vocab; ++c) sum += std::exp(double{l[c]} - mx);
  return {double{l[target]} - mx - std::log(sum), best == target};
}

// The model's input for a candidate, cut from the left to L tokens:
// (ctx + cont)[-(L+1):][:-1]. Checks ids and lengths.
absl::StatusOr<std::vector<int>> CandidateInput(const EncodedCandidate& c, int L, int64_t vocab) {
  if (c.context.empty() || c.continuation.empty()) {
    return absl::InvalidArgumentError("a candidate has an empty context or continuation");
  }
  if (static_cast<int64_t>(c.continuation.size()) > L) {
    return absl::InvalidArgumentError(absl::StrCat("continuation of ", c.continuation.size(),
                                                   " tokens exceeds the context length ", L));
  }
  for (int t : c.continuation) {
    if (t < 0 || t >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("continuation token ", t, " outside the vocabulary"));
    }
  }
  std::vector<int> full = c.context;
  full.insert(full.end(), c.continuation.begin(), c.continuation.end());
  const size_t keep = std::min(full.size(), static_cast<size_t>(L) + 1);
  return std::vector<int>(full.end() - keep, full.end() - 1);
}

void AddRows(const MatrixRM& logits, int64_t first_row, const std::vector<int>& targets, size_t first_target,
             size_t count, ContinuationScore* s) {
  for (size_t j = 0; j < count; ++j) {
    const float* row = logits.data() + (first_row + static_cast<int64_t>(j)) * logits.cols();
    auto [lp, greedy] = TokenLogProb(row, logits.cols(), targets[first_target + j]);
    s->logprob += lp;
    s->greedy = s->greedy && greedy;
  }
}

int ArgMax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());  // first maximum
}

}  // namespace

const char* TaskFormatName(TaskFormat f) {
  switch (f) {
    case TaskFormat::kMultipleChoice: return "multiple_choice";
    case TaskFormat::kSchema: return "schema";
    case TaskFormat::kLanguageModeling: return "language_modeling";
  }
  return "?";
}

int64_t Utf8Chars(absl::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

absl::StatusOr<TaskExample> ParseTaskLine(absl::string_view line, const std::string& delimiter,
                                          const std::string& where, TaskFormat* format) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a JSON object"));
  auto str = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field \"", key, "\" missing or not a string"));
    }
    return it->get<std::string>();
  };
  auto str_list = [&](const char* key) -> absl::StatusOr<std::vector<std::string>> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array() || it->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field \"", key, "\" missing or not a non-empty list"));
    }
    std::vector<std::string> out;
    for (const auto& x : *it) {
      if (!x.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": field \"", key, "\" has a non-string item"));
      }
      out.push_back(x.get<std::string>());
    }
    return out;
  };
  auto gold = [&](size_t n_choices) -> absl::StatusOr<int> {
    auto it = j.find("gold");
    if (it == j.end() || !it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field \"gold\" missing or not an integer"));
    }
    const int64_t g = it->get<int64_t>();
    if (g < 0 || g >= static_cast<int64_t>(n_choices)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"gold\" ", g, " is not in [0, ", n_choices, ")"));
    }
    return static_cast<int>(g);
  };
  TaskExample ex;
  TaskFormat f;
  if (j.contains("choices")) {
    f = TaskFormat::kMultipleChoice;
    SQ_ASSIGN_OR_RETURN(std::string query, str("query"));
    SQ_ASSIGN_OR_RETURN(std::vector<std::string> choices, str_list("choices"));
    SQ_ASSIGN_OR_RETURN(ex.gold, gold(choices.size()));
    for (const std::string& c : choices) {
      ex.candidates.emplace_back(query, delimiter + c);
      ex.norm_chars.push_back(Utf8Chars(c));
    }
  } else if (j.contains("context_options")) {
    f = TaskFormat::kSchema;
    SQ_ASSIGN_OR_RETURN(std::vector<std::string> contexts, str_list("context_options"));
    SQ_ASSIGN_OR_RETURN(std::string cont, str("continuation"));
    SQ_ASSIGN_OR_RETURN(ex.gold, gold(contexts.size()));
    for (const std::string& c : contexts) {
      ex.candidates.emplace_back(c, delimiter + cont);
      ex.norm_chars.push_back(Utf8Chars(cont));
    }
  } else if (j.contains("context")) {
    f = TaskFormat::kLanguageModeling;
    SQ_ASSIGN_OR_RETURN(std::string context, str("context"));
    SQ_ASSIGN_OR_RETURN(std::string cont, str("continuation"));
    ex.candidates.emplace_back(context, delimiter + cont);
    ex.norm_chars.push_back(Utf8Chars(cont));
    ex.gold = 0;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": unknown task shape (expected keys query+choices, context_options+continuation or "
               "context+continuation)"));
  }
  if (format != nullptr) *format = f;
  return ex;
}

absl::StatusOr<Task> BuildClozeTask(absl::string_view text, const std::string& name, int64_t limit,
                                    const std::string& delimiter, int min_context_words) {
  Task task;
  task.name = name;
  task.format = TaskFormat::kLanguageModeling;
  auto is_word = [](char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '\''; };
  auto add_story = [&](absl::string_view story) {
    story = absl::StripAsciiWhitespace(story);
    // The last word: the last run of letters / apostrophes (quotes trimmed).
    size_t end = story.size();
    while (end > 0 && !absl::ascii_isalpha(static_cast<unsigned char>(story[end - 1]))) --end;
    if (end == 0) return;
    size_t begin = end;
    while (begin > 0 && is_word(story[begin - 1])) --begin;
    while (begin < end && story[begin] == '\'') ++begin;  // an opening quote is not part of the word
    if (begin == 0 || !absl::ascii_isspace(static_cast<unsigned char>(story[begin - 1]))) return;
    const absl::string_view context = absl::StripTrailingAsciiWhitespace(story.substr(0, begin));
    const std::vector<absl::string_view> words = absl::StrSplit(context, absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty());
    if (static_cast<int>(words.size()) < min_context_words) return;
    TaskExample ex;
    const std::string cont = absl::StrCat(delimiter, story.substr(begin, end - begin));
    ex.candidates.emplace_back(std::string(context), cont);
    ex.norm_chars.push_back(Utf8Chars(cont));
    task.examples.push_back(std::move(ex));
  };
  size_t story_begin = 0, pos = 0;
  while (pos <= text.size() && (limit <= 0 || static_cast<int64_t>(task.examples.size()) < limit)) {
    size_t nl = text.find('\n', pos);
    if (nl == absl::string_view::npos) nl = text.size();
    const absl::string_view line = absl::StripAsciiWhitespace(text.substr(pos, nl - pos));
    if (line == "<|endoftext|>") {
      add_story(text.substr(story_begin, pos - story_begin));
      story_begin = nl + 1;
    } else if (nl == text.size()) {
      add_story(text.substr(story_begin));
    }
    pos = nl + 1;
  }
  if (task.examples.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": no cloze examples in the text"));
  return task;
}

absl::StatusOr<Task> LoadClozeTextFile(const std::string& path, const std::string& name, int64_t limit,
                                       const std::string& delimiter) {
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<Task> t = BuildClozeTask(text, name, limit, delimiter);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", t.status().message()));
  return t;
}

absl::StatusOr<Task> LoadTaskFile(const std::string& path, int64_t limit, const std::string& delimiter) {
  if (absl::EndsWith(path, ".txt")) {
    const std::filesystem::path fp = std::filesystem::absolute(path).lexically_normal();
    return LoadClozeTextFile(path, absl::StrCat(fp.parent_path().filename().string(), "_cloze"), limit, delimiter);
  }
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  Task task;
  task.name = std::filesystem::path(path).stem().string();
  const std::string base = std::filesystem::path(path).filename().string();
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size() && (limit <= 0 || static_cast<int64_t>(task.examples.size()) < limit)) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    absl::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == absl::string_view::npos) continue;
    TaskFormat f;
    SQ_ASSIGN_OR_RETURN(TaskExample ex, ParseTaskLine(line, delimiter, absl::StrCat(base, ":", line_no), &f));
    if (task.examples.empty()) {
      task.format = f;
    } else if (f != task.format) {
      return absl::InvalidArgumentError(absl::StrCat(base, ":", line_no, ": a ", TaskFormatName(f),
                                                     " line in a ", TaskFormatName(task.format), " file"));
    }
    task.examples.push_back(std::move(ex));
  }
  if (task.examples.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no examples"));
  return task;
}

absl::StatusOr<EncodedCandidate> EncodeCandidate(const Tokenizer& tokenizer, const std::string& context_in,
                                                 const std::string& continuation_in, bool add_bos) {
  EncodedCandidate out;
  const int bos = tokenizer.bos_id(), eos = tokenizer.eos_id();
  if (context_in.empty()) {
    // lm-eval: context_enc = [prefix token], continuation_enc = encode(continuation).
    const int prefix = add_bos ? (bos >= 0 ? bos : eos) : (eos >= 0 ? eos : bos);
    if (prefix < 0) return absl::InvalidArgumentError("empty context and the tokenizer has no BOS/EOS token");
    out.context = {prefix};
    out.continuation = tokenizer.Encode(continuation_in, false);
  } else {
    std::string context = context_in, continuation = continuation_in;
    const size_t end = context.find_last_not_of(" \t\n\r\f\v");
    const size_t n_spaces = end == std::string::npos ? context.size() : context.size() - end - 1;
    if (n_spaces > 0) {
      continuation = context.substr(context.size() - n_spaces) + continuation;
      context.resize(context.size() - n_spaces);
    }
    const std::vector<int> whole = tokenizer.Encode(context + continuation, false);
    const std::vector<int> ctx = tokenizer.Encode(context, false);
    if (add_bos && bos >= 0) out.context.push_back(bos);
    out.context.insert(out.context.end(), ctx.begin(), ctx.end());
    if (out.context.empty()) {
      const int prefix = eos >= 0 ? eos : bos;
      if (prefix < 0) return absl::InvalidArgumentError("context has no tokens and the tokenizer has no BOS/EOS");
      out.context.push_back(prefix);
    }
    if (whole.size() > ctx.size()) out.continuation.assign(whole.begin() + ctx.size(), whole.end());
  }
  if (out.continuation.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("continuation \"", continuation_in, "\" has no tokens"));
  }
  return out;
}

absl::StatusOr<std::vector<ContinuationScore>> ScoreCandidates(const Model& model,
                                                              const std::vector<EncodedCandidate>& candidates,
                                                              const TaskOptions& options, ThreadPool& pool) {
  const int L = options.seq_len > 0 ? options.seq_len : model.config.max_seq_len;
  std::vector<std::vector<int>> inputs;
  size_t longest = 1;
  for (const EncodedCandidate& c : candidates) {
    SQ_ASSIGN_OR_RETURN(std::vector<int> input, CandidateInput(c, L, model.config.vocab_size));
    longest = std::max(longest, input.size());
    inputs.push_back(std::move(input));
  }
  // Sized to the longest input, not L: a big model's full-length cache would
  // cost far more to allocate than a short example costs to score.
  KVCache cache(model, static_cast<int>(longest));
  std::vector<int> cached;  // tokens whose keys/values sit in cache rows [0, cached.size())
  MatrixRM logits;
  std::vector<ContinuationScore> out;
  for (size_t ci = 0; ci < candidates.size(); ++ci) {
    const EncodedCandidate& c = candidates[ci];
    std::vector<int>& input = inputs[ci];
    const size_t n_cont = c.continuation.size();
    // Row p of the input predicts the first continuation token.
    const size_t p = input.size() - n_cont;
    size_t common = 0;
    while (common < cached.size() && common < input.size() && cached[common] == input[common]) ++common;
    const size_t r0 = std::min(common, p);
    if (r0 < p) {
      // Rows [r0, p): only their keys/values are needed.
      SQ_RETURN_IF_ERROR(Forward(model, absl::MakeConstSpan(input).subspan(r0, p - r0), static_cast<int>(r0), cache,
                                 logits, /*all_logits=*/false, pool));
    }
    SQ_RETURN_IF_ERROR(Forward(model, absl::MakeConstSpan(input).subspan(p), static_cast<int>(p), cache, logits,
                               /*all_logits=*/true, pool));
    ContinuationScore s;
    s.tokens = static_cast<int64_t>(n_cont);
    s.greedy = true;
    AddRows(logits, 0, c.continuation, 0, n_cont, &s);
    out.push_back(s);
    cached = std::move(input);
  }
  return out;
}

absl::StatusOr<std::vector<ContinuationScore>> ScoreCandidatesReference(
    const Model& model, const std::vector<EncodedCandidate>& candidates, const TaskOptions& options,
    ThreadPool& pool) {
  const int L = options.seq_len > 0 ? options.seq_len : model.config.max_seq_len;
  std::vector<ContinuationScore> out;
  MatrixRM logits;
  for (const EncodedCandidate& c : candidates) {
    SQ_ASSIGN_OR_RETURN(std::vector<int> input, CandidateInput(c, L, model.config.vocab_size));
    KVCache cache(model, static_cast<int>(input.size()));
    SQ_RETURN_IF_ERROR(Forward(model, input, 0, cache, logits, true, pool));
    const size_t n_cont = c.continuation.size();
    ContinuationScore s;
    s.tokens = static_cast<int64_t>(n_cont);
    s.greedy = true;
    AddRows(logits, static_cast<int64_t>(input.size() - n_cont), c.continuation, 0, n_cont, &s);
    out.push_back(s);
  }
  return out;
}

std::pair<double, double> MeanAndStderr(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  if (x.empty()) return {0.0, 0.0};
  double mean = 0;
  for (double v : x) mean += v;
  mean /= n;
  if (x.size() < 2) return {mean, 0.0};
  double ss = 0;
  for (double v : x) ss += (v - mean) * (v - mean);
  return {mean, std::sqrt(ss / (n - 1)) / std::sqrt(n)};
}

absl::StatusOr<TaskResult> EvaluateTask(const Model& model, const Tokenizer& tokenizer, const Task& task,
                                        const TaskOptions& options, ThreadPool& pool) {
  TaskResult r;
  r.name = task.name;
  r.format = task.format;
  std::vector<double> hit, hit_norm, lls;
  double ll_sum = 0;
  int64_t tok_sum = 0;
  const int64_t total = task.examples.size();
  for (int64_t i = 0; i < total; ++i) {
    const TaskExample& ex = task.examples[i];
    const std::string where = absl::StrCat(task.name, " example ", i);
    if (ex.candidates.empty() || ex.norm_chars.size() != ex.candidates.size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no candidates or lengths do not match"));
    }
    std::vector<EncodedCandidate> enc;
    for (const auto& [ctx, cont] : ex.candidates) {
      auto e = EncodeCandidate(tokenizer, ctx, cont, options.add_bos);
      if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", e.status().message()));
      enc.push_back(*std::move(e));
    }
    auto scores = ScoreCandidates(model, enc, options, pool);
    if (!scores.ok()) return absl::Status(scores.status().code(), absl::StrCat(where, ": ", scores.status().message()));
    if (task.format == TaskFormat::kLanguageModeling) {
      const ContinuationScore& s = (*scores)[0];
      hit.push_back(s.greedy ? 1.0 : 0.0);
      r.predictions.push_back(s.greedy ? 1 : 0);
      r.norm_predictions.push_back(s.greedy ? 1 : 0);
      lls.push_back(s.logprob);
      ll_sum += s.logprob;
      tok_sum += s.tokens;
    } else {
      std::vector<double> ll, ll_norm;
      for (size_t k = 0; k < scores->size(); ++k) {
        ll.push_back((*scores)[k].logprob);
        ll_norm.push_back((*scores)[k].logprob / static_cast<double>(std::max<int64_t>(1, ex.norm_chars[k])));
      }
      const int pred = ArgMax(ll), pred_norm = ArgMax(ll_norm);
      r.predictions.push_back(pred);
      r.norm_predictions.push_back(pred_norm);
      hit.push_back(pred == ex.gold ? 1.0 : 0.0);
      hit_norm.push_back(pred_norm == ex.gold ? 1.0 : 0.0);
    }
    if (options.progress) options.progress(i + 1, total);
  }
  r.n = total;
  std::tie(r.acc, r.acc_stderr) = MeanAndStderr(hit);
  if (task.format == TaskFormat::kLanguageModeling) {
    r.acc_norm = r.acc;
    r.acc_norm_stderr = r.acc_stderr;
    r.perplexity = std::exp(-ll_sum / static_cast<double>(total));
    r.token_perplexity = tok_sum > 0 ? std::exp(-ll_sum / static_cast<double>(tok_sum)) : 0.0;
  } else {
    std::tie(r.acc_norm, r.acc_norm_stderr) = MeanAndStderr(hit_norm);
  }
  return r;
}

}  // namespace squeeze
