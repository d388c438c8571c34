#include "workers/engine/formats/sharded_safetensors.h"

#include <filesystem>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

bool IsModelFile(const std::string& name) {
  return name == kSingleFile || name == kIndexFile ||
         (absl::StartsWith(name, "model-") && absl::EndsWith(name, ".safetensors") && absl::StrContains(name, "-of-"));
}

}  // namespace

absl::StatusOr<int64_t> ParseShardSize(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard size \"", text, "\": ", why,
        " (expected bytes, or an integer with GB / MB / KB (10^9, 10^6, 10^3) or GiB / MiB / KiB (2^30, 2^20, 2^10),"
        " e.g. 5GB or 100KB)"));
  };
  const std::string upper = absl::AsciiStrToUpper(text);
  struct Unit {
    const char* suffix;
    int64_t factor;
    bool decimal;
  };
  static constexpr Unit kUnits[] = {{"GIB", int64_t{1} << 30, false}, {"MIB", int64_t{1} << 20, false},
                                    {"KIB", int64_t{1} << 10, false}, {"GB", 1'000'000'000, true},
                                    {"MB", 1'000'000, true},          {"KB", 1'000, true}};
  int64_t factor = 1;
  bool bits = false;
  absl::string_view number = text;
  for (const Unit& u : kUnits) {
    if (absl::EndsWith(upper, u.suffix)) {
      factor = u.factor;
      number = text.substr(0, text.size() - std::char_traits<char>::length(u.suffix));
      bits = u.decimal && absl::EndsWith(text, "b");  // transformers: "5Gb" is gigabits
      break;
    }
  }
  number = absl::StripAsciiWhitespace(number);
  int64_t n = 0;
  if (number.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(number[0])) || !absl::SimpleAtoi(number, &n)) {
    return bad("not an integer with an optional unit");
  }
  if (n > INT64_MAX / factor) return bad("too large");
  int64_t bytes = n * factor;
  if (bits) bytes /= 8;
  if (bytes <= 0) return bad("must be more than 0 bytes");
  return bytes;
}

absl::StatusOr<ShardedWrite> WriteShardedSafetensors(const std::string& dir, std::vector<SafetensorsEntry> entries,
                                                     const std::map<std::string, std::string>& metadata,
                                                     int64_t max_shard_bytes) {
  if (max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": max shard size ", max_shard_bytes, " must be > 0"));
  }
  std::vector<std::vector<SafetensorsEntry>> shards(1);
  int64_t in_shard = 0;
  ShardedWrite out;
  for (SafetensorsEntry& e : entries) {
    const int64_t bytes = StoredBytes(e);
    if (!shards.back().empty() && in_shard + bytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    in_shard += bytes;
    out.total_bytes += bytes;
    shards.back().push_back(std::move(e));
  }
  const int n = static_cast<int>(shards.size());
  out.shards = n;
  if (n == 1) {
    SQ_RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / kSingleFile).string(), std::move(shards[0]), metadata));
    out.files.insert(kSingleFile);
  } else {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", out.total_bytes}};
    nlohmann::json weight_map = nlohmann::json::object();  // sorted by tensor name
    for (int i = 0; i < n; ++i) {
      const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, n);
      for (const SafetensorsEntry& e : shards[i]) weight_map[e.name] = file;
      SQ_RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / file).string(), std::move(shards[i]), metadata));
      out.files.insert(file);
    }
    index["weight_map"] = weight_map;
    SQ_RETURN_IF_ERROR(WriteFileAtomically((fs::path(dir) / kIndexFile).string(), index.dump(2) + "\n"));
    out.files.insert(kIndexFile);
  }
  // Model files of an earlier save with another layout would shadow or
  // contradict these (the index wins over model.safetensors when both exist).
  std::error_code ec;
  for (const fs::directory_entry& de : fs::directory_iterator(dir, ec)) {
    const std::string name = de.path().filename().string();
    if (!IsModelFile(name) || out.files.count(name)) continue;
    std::error_code rm;
    fs::remove(de.path(), rm);
    if (rm) return absl::InternalError(absl::StrCat(de.path().string(), ": cannot remove stale file: ", rm.message()));
  }
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot list directory: ", ec.message()));
  return out;
}

}  // namespace squeeze
