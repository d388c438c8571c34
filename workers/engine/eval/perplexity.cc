#include "workers/engine/eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze {

absl::StatusOr<PplProtocol> ParsePplProtocol(absl::string_view name) {
  if (name == "rolling") return PplProtocol::kRolling;
  if (name == "gptq") return PplProtocol::kGptq;
  return absl::InvalidArgumentError(absl::StrCat("unknown perplexity protocol \"", name,
                                                 "\" (expected rolling or gptq)"));
}

std::vector<EvalWindow> RollingWindows(const std::vector<int>& tokens, int prefix_token, int max_seq_len) {
  std::vector<EvalWindow> out;
  const int64_t n = tokens.size(), L = max_seq_len;
  if (n == 0 || L <= 0) return out;
  // First window: [prefix] + t[0, first-1) scores t[0, first).
  const int64_t first = std::min(L, n);
  EvalWindow w;
  w.input.push_back(prefix_token);
  w.input.insert(w.input.end(), tokens.begin(), tokens.begin() + first - 1);
  w.targets.assign(tokens.begin(), tokens.begin() + first);
  w.first_scored_row = 0;
  out.push_back(std::move(w));
  int64_t predicted = first;
  // context_len = 1 -> pred_len = max_seq_len.
  while (predicted < n) {
    const int64_t pred = std::min(n - predicted, L);
    const int64_t end = predicted + pred;
    // lm_eval: context = t[end-L-1, end-1), continuation = t[end-pred, end);
    // disjoint: the model reads (context[:len-(pred-1)] + continuation)[:-1]
    // = t[end-L-1, end-1) and scores the last `pred` positions.
    EvalWindow v;
    v.input.assign(tokens.begin() + (end - L - 1), tokens.begin() + (end - 1));
    v.targets.assign(tokens.begin() + (end - pred), tokens.begin() + end);
    v.first_scored_row = static_cast<int64_t>(v.input.size()) - pred;
    out.push_back(std::move(v));
    predicted += pred;
  }
  return out;
}

std::vector<EvalWindow> GptqWindows(const std::vector<int>& tokens, int seq_len) {
  std::vector<EvalWindow> out;
  if (seq_len < 2) return out;
  const int64_t n_windows = static_cast<int64_t>(tokens.size()) / seq_len;
  for (int64_t i = 0; i < n_windows; ++i) {
    EvalWindow w;
    auto begin = tokens.begin() + i * seq_len;
    w.input.assign(begin, begin + seq_len);
    w.targets.assign(begin + 1, begin + seq_len);
    w.first_scored_row = 0;
    out.push_back(std::move(w));
  }
  return out;
}

absl::Status ScoreWindows(const Model& model, const std::vector<EvalWindow>& windows, int seq_len,
                          PerplexityResult* result, const std::function<void(int64_t, int64_t)>& progress,
                          ThreadPool& pool) {
  KVCache cache(model, seq_len);
  MatrixRM logits;
  const int64_t total = windows.size();
  for (int64_t wi = 0; wi < total; ++wi) {
    const EvalWindow& w = windows[wi];
    SQ_RETURN_IF_ERROR(Forward(model, w.input, 0, cache, logits, true, pool));
    for (size_t j = 0; j < w.targets.size(); ++j) {
      const int64_t row = w.first_scored_row + static_cast<int64_t>(j);
      const int target = w.targets[j];
      if (target < 0 || target >= logits.cols()) {
        return absl::InvalidArgumentError(absl::StrCat("target token ", target, " outside the vocabulary"));
      }
      const float* l = logits.data() + row * logits.cols();
      const float mx = *std::max_element(l, l + logits.cols());
      double sum = 0;
      for (int64_t c = 0; c < logits.cols(); ++c) sum += std::exp(double{l[c]} - mx);
      result->nll += std::log(sum) + mx - l[target];
    }
    result->tokens += static_cast<int64_t>(w.targets.size());
    result->windows += 1;
    if (progress) progress(wi + 1, total);
  }
  return absl::OkStatus();
}

absl::StatusOr<PerplexityResult> EvaluatePerplexity(const Model& model, const Tokenizer& tokenizer,
                                                    const std::vector<std::string>& documents,
                                                    const PerplexityOptions& options, ThreadPool& pool) {
  const int L = options.seq_len > 0 ? options.seq_len : model.config.max_seq_len;
  if (L < 2) return absl::InvalidArgumentError(absl::StrCat("seq_len ", L, " is too short (need >= 2)"));
  PerplexityResult r;
  std::vector<EvalWindow> windows;
  if (options.protocol == PplProtocol::kRolling) {
    const int prefix = tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : tokenizer.eos_id();
    if (prefix < 0) return absl::InvalidArgumentError("the tokenizer has neither a BOS nor an EOS token");
    for (const std::string& doc : documents) {
      std::vector<EvalWindow> w = RollingWindows(tokenizer.Encode(doc, false), prefix, L);
      if (!w.empty()) r.bytes += static_cast<int64_t>(doc.size());
      for (auto& x : w) windows.push_back(std::move(x));
    }
  } else {
    std::string joined;
    for (size_t i = 0; i < documents.size(); ++i) {
      if (i) joined += "\n\n";
      joined += documents[i];
    }
    windows = GptqWindows(tokenizer.Encode(joined, false), L);
    for (const EvalWindow& w : windows) r.bytes += static_cast<int64_t>(tokenizer.Decode(w.targets).size());
  }
  if (windows.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the text has too few tokens to score (seq_len ", L, ")"));
  }
  SQ_RETURN_IF_ERROR(ScoreWindows(model, windows, L, &r, options.progress, pool));
  r.nll_per_token = r.nll / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.nll_per_token);
  r.bits_per_byte = r.bytes > 0 ? r.nll / (std::log(2.0) * static_cast<double>(r.bytes)) : 0.0;
  return r;
}

std::vector<std::string> SplitDocuments(const std::string& text, const std::string& separator) {
  if (separator.empty()) return {text};
  std::vector<std::string> docs;
  std::string current;
  size_t pos = 0;
  auto flush = [&] {
    size_t b = current.find_first_not_of("\r\n"), e = current.find_last_not_of("\r\n");
    if (b != std::string::npos) docs.push_back(current.substr(b, e - b + 1));
    current.clear();
  };
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line == separator) {
      flush();
    } else {
      current += text.substr(pos, std::min(nl + 1, text.size()) - pos);
    }
    pos = nl + 1;
  }
  flush();
  return docs;
}

}  // namespace squeeze
