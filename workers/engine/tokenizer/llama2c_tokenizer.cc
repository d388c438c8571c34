#include "workers/engine/tokenizer/llama2c_tokenizer.h"

#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/tokenizer/bpe_merge.h"

namespace squeeze {
namespace {

// run.c only merges pairs whose score beats its initial best_score of -1e10.
constexpr float kMinMergeScore = -1e10f;

uint64_t PairKey(int a, int b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// "<0xAB>" -> 0xAB, else -1 (run.c: sscanf(piece, "<0x%02hhX>", ...)).
int ParseBytePiece(absl::string_view p) {
  if (p.size() < 6 || p.substr(0, 3) != "<0x") return -1;
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(p[3]), lo = hex(p[4]);
  if (hi < 0 || lo < 0 || p[5] != '>') return -1;
  return hi * 16 + lo;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::FromFile(
    const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return FromBytes(bytes, path);
}

absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Llama2cTokenizer::FromBytes(
    absl::string_view bytes, const std::string& name) {
  std::unique_ptr<Llama2cTokenizer> t(new Llama2cTokenizer());
  size_t off = 0;
  const auto read_i32 = [&](int32_t* v) {
    if (off + 4 > bytes.size()) return false;
    std::memcpy(v, bytes.data() + off, 4);
    off += 4;
    return true;
  };
  int32_t max_len = 0;
  if (!read_i32(&max_len)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": llama2.c tokenizer too short for its max_token_length header"));
  }
  if (max_len <= 0 || max_len > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": llama2.c tokenizer max_token_length ", max_len, " is not plausible"));
  }
  t->max_token_length_ = max_len;
  while (off < bytes.size()) {
    const int id = static_cast<int>(t->pieces_.size());
    float score;
    int32_t len;
    if (off + 8 > bytes.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": llama2.c tokenizer truncated in the header of token ", id, " at byte ", off));
    }
    std::memcpy(&score, bytes.data() + off, 4);
    std::memcpy(&len, bytes.data() + off + 4, 4);
    off += 8;
    if (len < 0 || len > max_len || off + static_cast<size_t>(len) > bytes.size()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": llama2.c tokenizer token ", id,
                                                     " has length ", len, " (max_token_length ",
                                                     max_len, ", ", bytes.size() - off,
                                                     " bytes left)"));
    }
    // An empty piece would merge with anything (a + "" == a): run.c's merge
    // loop and the precomputed pairs of Encode then disagree. No real
    // vocabulary has one (found by tests/fuzz/tokenizer_bin_fuzz.cc).
    if (len == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": llama2.c tokenizer token ", id, " is empty (at byte ", off - 4, ")"));
    }
    t->pieces_.emplace_back(bytes.data() + off, len);
    t->scores_.push_back(score);
    off += len;
  }
  if (t->pieces_.size() < 259) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": llama2.c tokenizer has ", t->pieces_.size(),
        " tokens; needs at least 259 (<unk>, <s>, </s> and 256 byte pieces)"));
  }
  const int n = static_cast<int>(t->pieces_.size());
  t->canonical_.resize(n);
  for (int id = 0; id < n; ++id) {
    auto [it, inserted] = t->piece_to_id_.emplace(t->pieces_[id], id);
    t->canonical_[id] = it->second;
  }
  // Every pair whose concatenation is a piece: run.c looks the concatenation
  // up at each step; precomputing the pairs gives the same answers.
  for (int id = 0; id < n; ++id) {
    if (t->canonical_[id] != id) continue;
    const std::string& p = t->pieces_[id];
    for (size_t k = 1; k < p.size(); ++k) {
      const int a = t->PieceId(absl::string_view(p).substr(0, k));
      const int b = t->PieceId(absl::string_view(p).substr(k));
      if (a >= 0 && b >= 0) t->pair_to_merged_.emplace(PairKey(a, b), id);
    }
  }
  return t;
}

int Llama2cTokenizer::PieceId(absl::string_view piece) const {
  auto it = piece_to_id_.find(std::string(piece));
  return it == piece_to_id_.end() ? -1 : it->second;
}

std::vector<int> Llama2cTokenizer::InitialSymbols(absl::string_view text) const {
  std::vector<int> tokens;
  if (text.empty()) return tokens;
  // run.c prepends the dummy prefix " " for non-empty text. (Should " " not
  // be a piece, it falls back to its byte.)
  const int space = PieceId(" ");
  tokens.push_back(space >= 0 ? space : ' ' + 3);
  // run.c's loop: a codepoint is a non-continuation byte plus the following
  // continuation bytes, at most 4 bytes; the buffer is only reset at a
  // non-continuation byte or after a byte fallback, exactly as there.
  std::string buf;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) buf.clear();
    buf.push_back(static_cast<char>(c));
    const bool next_is_cont =
        i + 1 < n && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (next_is_cont && buf.size() < 4) continue;
    const int id = PieceId(buf);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (unsigned char b : buf) tokens.push_back(b + 3);
      buf.clear();
    }
  }
  return tokens;
}

std::vector<int> Llama2cTokenizer::Encode(absl::string_view text, bool add_bos) const {
  std::vector<int> symbols = InitialSymbols(text);
  const auto lookup = [this](int a, int b) -> std::optional<PairMerge> {
    auto it = pair_to_merged_.find(PairKey(canonical_[a], canonical_[b]));
    if (it == pair_to_merged_.end() || !(scores_[it->second] > kMinMergeScore)) {
      return std::nullopt;
    }
    return PairMerge{-static_cast<double>(scores_[it->second]), it->second};
  };
  MergeByPriority(&symbols, lookup);
  if (add_bos) symbols.insert(symbols.begin(), bos_id());
  return symbols;
}

std::vector<int> Llama2cTokenizer::EncodeReference(absl::string_view text, bool add_bos) const {
  // run.c's loop verbatim: concatenate, look up, keep the strictly best score.
  std::vector<int> tokens = InitialSymbols(text);
  while (true) {
    float best_score = kMinMergeScore;
    int best_id = -1, best_idx = -1;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      const int id = PieceId(pieces_[tokens[i]] + pieces_[tokens[i + 1]]);
      if (id != -1 && scores_[id] > best_score) {
        best_score = scores_[id];
        best_id = id;
        best_idx = static_cast<int>(i);
      }
    }
    if (best_idx == -1) break;
    tokens[best_idx] = best_id;
    tokens.erase(tokens.begin() + best_idx + 1);
  }
  if (add_bos) tokens.insert(tokens.begin(), bos_id());
  return tokens;
}

std::string Llama2cTokenizer::DecodePiece(int prev_id, int id) const {
  if (id < 0 || id >= vocab_size()) return "";
  absl::string_view piece = pieces_[id];
  // After BOS the SentencePiece decoder strips the leading space.
  if (prev_id == bos_id() && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
  const int byte = ParseBytePiece(piece);
  if (byte >= 0) return std::string(1, static_cast<char>(byte));
  return std::string(piece);
}

std::string Llama2cTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  int prev = -1;
  for (int id : ids) {
    if (id != bos_id() && id != eos_id()) out += DecodePiece(prev, id);
    prev = id;
  }
  return out;
}

}  // namespace squeeze
