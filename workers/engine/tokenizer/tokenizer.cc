#include "workers/engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/tokenizer/hf_tokenizer.h"
#include "workers/engine/tokenizer/llama2c_tokenizer.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Regular files in `dir` whose names start with `prefix` and end with
// `suffix`, sorted by name.
std::vector<fs::path> Matching(const fs::path& dir, absl::string_view prefix,
                               absl::string_view suffix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, prefix) && absl::EndsWith(name, suffix) && IsFile(it->path())) {
      out.push_back(it->path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// GPT-2's merges file beside a vocab.json / encoder.json.
std::string MergesBeside(const fs::path& vocab) {
  for (const char* name : {"merges.txt", "vocab.bpe"}) {
    const fs::path p = vocab.parent_path() / name;
    if (IsFile(p)) return p.string();
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    SQ_ASSIGN_OR_RETURN(std::string file, FindTokenizerFor(path));
    return LoadTokenizer(file);
  }
  SQ_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  size_t first = 0;
  while (first < bytes.size() && (bytes[first] == ' ' || bytes[first] == '\n' ||
                                  bytes[first] == '\r' || bytes[first] == '\t')) {
    ++first;
  }
  if (first < bytes.size() && bytes[first] == '{') {
    // JSON: a tokenizer.json has a "model" object; a GPT-2 vocab.json maps
    // tokens (one of them "model") to ids.
    const nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": starts with '{' but is not JSON"));
    }
    if (j.contains("model") && j["model"].is_object()) {
      SQ_ASSIGN_OR_RETURN(std::unique_ptr<HfBpeTokenizer> t, HfBpeTokenizer::FromFile(path));
      return std::unique_ptr<Tokenizer>(std::move(t));
    }
    const std::string merges = MergesBeside(path);
    if (merges.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": JSON without \"model\" (so not a tokenizer.json); read as a GPT-2 vocab it "
                "needs merges.txt or vocab.bpe beside it, and there is neither"));
    }
    SQ_ASSIGN_OR_RETURN(std::unique_ptr<HfBpeTokenizer> t,
                        HfBpeTokenizer::FromGpt2Files(path, merges));
    return std::unique_ptr<Tokenizer>(std::move(t));
  }
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<Llama2cTokenizer> t, Llama2cTokenizer::FromBytes(bytes, path));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::string> FindTokenizerFor(const std::string& model_path) {
  std::error_code ec;
  const fs::path model(model_path);
  std::vector<std::string> looked;
  if (fs::is_directory(model, ec)) {
    const fs::path json = model / "tokenizer.json";
    if (IsFile(json)) return json.string();
    looked.push_back(json.string());
    for (const char* prefix : {"tokenizer", "tok"}) {
      const auto found = Matching(model, prefix, ".bin");
      if (!found.empty()) return found.front().string();
      looked.push_back((model / absl::StrCat(prefix, "*.bin")).string());
    }
    const fs::path vocab = model / "vocab.json";
    if (IsFile(vocab) && !MergesBeside(vocab).empty()) return vocab.string();
    looked.push_back((model / "vocab.json + merges.txt").string());
  } else if (fs::exists(model, ec)) {
    const fs::path dir = model.has_parent_path() ? model.parent_path() : fs::path(".");
    const fs::path bin = dir / "tokenizer.bin";
    if (IsFile(bin)) return bin.string();
    looked.push_back(bin.string());
    for (const fs::path& p : Matching(dir, "tok", ".bin")) {
      if (p.filename() != model.filename()) return p.string();
    }
    looked.push_back((dir / "tok*.bin").string());
    const fs::path json = dir / "tokenizer.json";
    if (IsFile(json)) return json.string();
    looked.push_back(json.string());
  } else {
    return absl::NotFoundError(absl::StrCat("model path ", model_path, " does not exist"));
  }
  return absl::NotFoundError(absl::StrCat("no tokenizer for ", model_path,
                                          "; looked for: ", absl::StrJoin(looked, ", ")));
}

}  // namespace squeeze
