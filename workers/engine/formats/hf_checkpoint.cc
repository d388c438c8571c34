#include "workers/engine/formats/hf_checkpoint.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/hf_config.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/formats/sharded_safetensors.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string Join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// Merges the layer kinds SaveModel recorded in `st`'s metadata into ck.
absl::Status AddLinearKinds(const SafetensorsFile& st, CheckpointTensors& ck) {
  auto it = st.metadata.find("squeeze");
  if (it == st.metadata.end()) return absl::OkStatus();
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(st.path, ": __metadata__ \"squeeze\": ", what));
  };
  json meta = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) return bad("not a JSON object");
  auto kinds = meta.find("linear_kinds");
  if (kinds == meta.end()) return absl::OkStatus();
  if (!kinds->is_object()) return bad("\"linear_kinds\" is not an object");
  for (auto k = kinds->begin(); k != kinds->end(); ++k) {
    if (!k.value().is_string()) return bad(absl::StrCat("kind of ", k.key(), " is not a string"));
    const std::string kind = k.value().get<std::string>();
    auto [pos, inserted] = ck.linear_kinds.emplace(k.key(), kind);
    if (!inserted && pos->second != kind) {
      return bad(
          absl::StrCat("kind of ", k.key(), " is ", kind, " here but ", pos->second, " in another shard"));
    }
  }
  return absl::OkStatus();
}

absl::Status AddFile(const SafetensorsFile& st, CheckpointTensors& ck) {
  SQ_RETURN_IF_ERROR(AddLinearKinds(st, ck));
  for (const auto& [name, view] : st.tensors) {
    if (ck.tensors.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(st.path, ": tensor ", name, ": also in ", ck.tensors[name].file));
    }
    ck.tensors[name] = SourceTensor{view, st.path};
  }
  return absl::OkStatus();
}

// Reads the shards listed in the index. Refused (InvalidArgument naming the
// index or the shard): a shard file name that is not a plain
// "*.safetensors" name in `dir` (no path separators, no "..": nothing outside
// the directory is opened), a metadata.total_size that is not a non-negative
// integer, a listed tensor missing from its shard, and a shard holding a
// tensor the index assigns elsewhere or does not list (a tensor in two
// shards is ambiguous; transformers would load whichever it reads last).
// A listed shard that cannot be read keeps its error code, prefixed by the
// index path.
absl::Status ReadIndex(const std::string& dir, CheckpointTensors& ck) {
  const std::string index_path = Join(dir, kHfIndexFile);
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": ", what));
  };
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return bad(absl::StrCat("invalid JSON: ", e.what()));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return bad("missing object \"weight_map\"");
  }
  if (j.contains("metadata")) {
    if (!j["metadata"].is_object()) return bad("\"metadata\" is not an object");
    if (j["metadata"].contains("total_size")) {
      const json& t = j["metadata"]["total_size"];
      if (!t.is_number_integer() || (t.is_number_integer() && !t.is_number_unsigned() && t.get<int64_t>() < 0)) {
        return bad(absl::StrCat("metadata.total_size ", t.dump(), " is not a non-negative integer"));
      }
    }
  }
  // shard file -> tensor names it must hold
  std::map<std::string, std::vector<std::string>> by_shard;
  std::map<std::string, std::string> shard_of;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      return bad(absl::StrCat("weight_map entry for ", it.key(), " is not a string"));
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || absl::StrContains(shard, "/") || absl::StrContains(shard, "\\") ||
        absl::StrContains(shard, std::string(1, '\0')) || absl::StartsWith(shard, ".") ||
        !absl::EndsWith(shard, ".safetensors")) {
      return bad(absl::StrCat("weight_map entry for ", it.key(), ": invalid shard file name \"", shard,
                              "\" (must be a *.safetensors file name inside the directory, without path "
                              "separators or a leading dot)"));
    }
    by_shard[shard].push_back(it.key());
    shard_of[it.key()] = shard;
  }
  if (by_shard.empty()) return bad("weight_map is empty");
  std::vector<SafetensorsFile> files;
  for (const auto& [shard, names] : by_shard) {
    absl::StatusOr<SafetensorsFile> st = ReadSafetensors(Join(dir, shard));
    if (!st.ok()) {
      return absl::Status(st.status().code(), absl::StrCat(index_path, ": shard ", shard, " (", names.size(),
                                                           " tensors, e.g. ", names.front(), "): ",
                                                           st.status().message()));
    }
    SQ_RETURN_IF_ERROR(AddLinearKinds(*st, ck));
    for (const std::string& name : names) {
      auto t = st->tensors.find(name);
      if (t == st->tensors.end()) {
        return absl::InvalidArgumentError(absl::StrCat(st->path, ": tensor ", name, ": listed in ", index_path,
                                                       " but missing from this shard"));
      }
      ck.tensors[name] = SourceTensor{t->second, st->path};
    }
    files.push_back(*std::move(st));
  }
  // Every listed tensor is where the index says; now nothing else may be.
  for (const SafetensorsFile& st : files) {
    const std::string shard = fs::path(st.path).filename().string();
    for (const auto& [name, view] : st.tensors) {
      auto owner = shard_of.find(name);
      if (owner == shard_of.end()) {
        return absl::InvalidArgumentError(absl::StrCat(st.path, ": tensor ", name, " is not in the weight_map of ",
                                                       index_path));
      }
      if (owner->second != shard) {
        return absl::InvalidArgumentError(absl::StrCat(st.path, ": tensor ", name, " is also stored here, but ",
                                                       index_path, " assigns it to ", owner->second,
                                                       " (a tensor in two shards is ambiguous)"));
      }
    }
  }
  return absl::OkStatus();
}

const char* TorchDtype(DType d) {
  switch (d) {
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
    default:
      return "float32";
  }
}

TensorView FloatView(const float* data, std::vector<int64_t> shape) {
  TensorView v;
  v.dtype = DType::kF32;
  v.shape = std::move(shape);
  v.data = data;
  v.nbytes = static_cast<size_t>(v.numel()) * sizeof(float);
  return v;
}

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

}  // namespace

absl::StatusOr<CheckpointTensors> ReadHfCheckpoint(const std::string& dir) {
  CheckpointTensors ck;
  SQ_ASSIGN_OR_RETURN(ck.config, ReadHfConfig(Join(dir, kHfConfigFile)));
  if (Exists(Join(dir, kHfIndexFile))) {
    SQ_RETURN_IF_ERROR(ReadIndex(dir, ck));
  } else if (Exists(Join(dir, kHfSingleFile))) {
    SQ_ASSIGN_OR_RETURN(SafetensorsFile st, ReadSafetensors(Join(dir, kHfSingleFile)));
    SQ_RETURN_IF_ERROR(AddFile(st, ck));
  } else {
    return absl::NotFoundError(absl::StrCat(dir, ": no ", kHfSingleFile, " or ", kHfIndexFile));
  }
  return ck;
}

absl::StatusOr<ShardedWrite> WriteHfCheckpoint(const Model& model, const std::string& dir,
                                               const SaveOptions& options) {
  if (!IsFloat(options.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SaveModel ", dir, ": dtype ", DTypeName(options.dtype), " is not F32, F16 or BF16"));
  }
  if (options.max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("SaveModel ", dir, ": max_shard_bytes must be > 0"));
  }
  const ModelConfig& c = model.config;
  SQ_RETURN_IF_ERROR(c.Validate());
  if (model.embedding.rows() != c.vocab_size || model.embedding.cols() != c.dim ||
      static_cast<int>(model.blocks.size()) != c.n_layers ||
      static_cast<int64_t>(model.final_norm.size()) != c.dim ||
      (model.lm_head == nullptr) != c.tie_word_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SaveModel ", dir, ": model does not match its config (embedding ", model.embedding.rows(), "x",
        model.embedding.cols(), ", ", model.blocks.size(), " blocks, final_norm ", model.final_norm.size(),
        ", lm_head ", model.lm_head ? "present" : "absent", ")"));
  }

  // Collect entries. Dense float tensors are stored as options.dtype; tensors
  // of compressed layer kinds are stored exactly as the layer gives them.
  std::vector<SafetensorsEntry> entries;
  json kinds = json::object();
  auto dense = [&](std::string name, TensorView v) {
    entries.push_back(StoredAs(std::move(name), std::move(v), options.dtype));
  };
  dense("model.embed_tokens.weight", FloatView(model.embedding.data(), {c.vocab_size, c.dim}));
  for (int l = 0; l < c.n_layers; ++l) {
    const TransformerBlock& b = model.blocks[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    dense(p + "input_layernorm.weight",
          FloatView(b.attn_norm.data(), {static_cast<int64_t>(b.attn_norm.size())}));
    dense(p + "post_attention_layernorm.weight",
          FloatView(b.ffn_norm.data(), {static_cast<int64_t>(b.ffn_norm.size())}));
  }
  dense("model.norm.weight", FloatView(model.final_norm.data(), {c.dim}));
  // AllLinears() only hands out slots; nothing is modified here.
  for (const LinearSlot& s : const_cast<Model&>(model).AllLinears()) {
    const LinearLayer* layer = s.slot->get();
    if (layer == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("SaveModel ", dir, ": ", s.name, " is missing"));
    }
    const std::string kind = layer->kind();
    kinds[s.name] = kind;
    const bool is_dense = absl::StartsWith(kind, "dense_");
    for (auto& [suffix, view] : layer->StoredTensors()) {
      std::string name = absl::StrCat(s.name, ".", suffix);
      if (is_dense && IsFloat(view.dtype)) {
        dense(std::move(name), std::move(view));
      } else {
        entries.push_back(StoredAs(std::move(name), std::move(view)));
      }
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });

  json squeeze_meta = {
      {"version", 1}, {"dtype", std::string(DTypeName(options.dtype))}, {"linear_kinds", kinds}};
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"squeeze", squeeze_meta.dump()}};

  SQ_RETURN_IF_ERROR(MakeDirs(dir));
  SQ_ASSIGN_OR_RETURN(ShardedWrite written,
                      WriteShardedSafetensors(dir, std::move(entries), metadata, options.max_shard_bytes));
  SQ_RETURN_IF_ERROR(
      WriteFileAtomically(Join(dir, kHfConfigFile), HfConfigJson(EffectiveConfig(model), TorchDtype(options.dtype))));
  return written;
}

}  // namespace squeeze
