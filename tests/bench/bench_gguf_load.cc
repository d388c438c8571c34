// bench_gguf_load: load time and peak memory of the lossless GGUF import
// (methods/quant/ggml_block_import.h) on a large file, both paths in the same
// run:
//   direct     LoadGgufModelWithBlocks: Q4_0 / Q8_0 linear weights go from
//              the file to GgmlBlockLinear blocks, never to fp32;
//   reference  LoadGgufModelWithBlocksReference: the whole file dequantized
//              to fp32 (LoadGgufModel), then the Q4_0 / Q8_0 layers replaced.
// Each load runs in its own process (this binary re-run as
// `bench_gguf_load --load direct|reference FILE`), which reports its wall
// seconds and its VmHWM (peak resident set, which counts the file's mapped
// pages it touched), so neither path inherits the other's heap.
//
//   bench_gguf_load [FILE.gguf ...]
//   bench_gguf_load --write OUT.gguf LAYERS   (only write the synthetic file)
// Without files: writes a synthetic GGUF with Llama-7B layer shapes (dim
// 4096, hidden 11008, 32 heads of 128, vocab 32000, untied output) and
// SQUEEZE_GGUF_LAYERS blocks (default 1): every block linear and the
// embedding Q4_0, output.weight Q8_0 (so both block kinds load), norms F32,
// random blocks with finite scales, the stories260K tokenizer padded to 32000
// tokens (../shared; skipped when absent). The file is removed afterwards.
// Output: one line per file and loader, then
//   RATIO gguf_blocks_load_speed_<name>  reference seconds / direct seconds
//   RATIO gguf_blocks_load_memory_<name> reference peak RSS / direct peak RSS
// (higher is better for both).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/bench/bench_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/gguf.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/methods/quant/ggml_block_import.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using bench::PeakRssMiB;

// Child: one load, one line "LOADED <seconds> <peak MiB> <linear bytes> <first kind>".
int LoadOnce(const std::string& loader, const std::string& path) {
  const auto t0 = Clock::now();
  absl::StatusOr<GgufModel> m =
      loader == "direct" ? LoadGgufModelWithBlocks(path) : LoadGgufModelWithBlocksReference(path);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!m.ok()) {
    std::fprintf(stderr, "bench_gguf_load: %s: %s\n", path.c_str(), std::string(m.status().message()).c_str());
    return 1;
  }
  int64_t bytes = 0;
  for (LinearSlot& l : m->model.AllLinears()) bytes += (*l.slot)->StorageBytes();
  std::printf("LOADED %.3f %.1f %lld %s\n", s, PeakRssMiB(), static_cast<long long>(bytes),
              m->model.blocks[0].q_proj->kind().c_str());
  return 0;
}

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Random Q4_0 / Q8_0 rows: fp16 scales in [2^-7, 2^-6) (finite), random codes.
GgufTensorData RandomBlocks(const std::string& name, int64_t rows, int64_t cols, GgmlType type, uint64_t seed) {
  const int64_t block_bytes = type == GgmlType::kQ4_0 ? 18 : 34;
  const int64_t blocks = rows * cols / 32;
  std::string bytes(static_cast<size_t>(blocks * block_bytes), '\0');
  for (size_t i = 0; i < bytes.size(); i += 8) {
    const uint64_t r = SplitMix(seed);
    std::memcpy(bytes.data() + i, &r, std::min<size_t>(8, bytes.size() - i));
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint16_t d = static_cast<uint16_t>(0x2000 | (SplitMix(seed) & 0x3FF));
    std::memcpy(bytes.data() + b * block_bytes, &d, 2);
  }
  return {name, {cols, rows}, type, std::move(bytes)};
}

GgufTensorData Ones(const std::string& name, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n), 1.0f);
  return {name, {n}, GgmlType::kF32, std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4)};
}

absl::Status WriteSynthetic(const std::string& path, int layers, const std::string& tokenizer) {
  const int64_t dim = 4096, hidden = 11008, vocab = 32000, heads = 32;
  SQ_ASSIGN_OR_RETURN(std::vector<GgufKV> kv, GgufTokenizerMetadata(tokenizer, static_cast<int>(vocab)));
  auto u32 = [](int64_t v) { return GgufValue::U32(static_cast<uint32_t>(v)); };
  std::vector<GgufKV> meta = {{"general.architecture", GgufValue::Str("llama")},
                              {"general.alignment", u32(32)},
                              {"llama.vocab_size", u32(vocab)},
                              {"llama.context_length", u32(4096)},
                              {"llama.embedding_length", u32(dim)},
                              {"llama.block_count", u32(layers)},
                              {"llama.feed_forward_length", u32(hidden)},
                              {"llama.attention.head_count", u32(heads)},
                              {"llama.attention.head_count_kv", u32(heads)},
                              {"llama.rope.freq_base", GgufValue::F32(10000.0f)},
                              {"llama.attention.layer_norm_rms_epsilon", GgufValue::F32(1e-5f)}};
  for (GgufKV& k : kv) meta.push_back(std::move(k));
  std::vector<GgufTensorData> t;
  uint64_t seed = 1;
  t.push_back(RandomBlocks("token_embd.weight", vocab, dim, GgmlType::kQ4_0, ++seed));
  for (int l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back(Ones(p + "attn_norm.weight", dim));
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
      t.push_back(RandomBlocks(p + n + ".weight", dim, dim, GgmlType::kQ4_0, ++seed));
    }
    t.push_back(Ones(p + "ffn_norm.weight", dim));
    t.push_back(RandomBlocks(p + "ffn_gate.weight", hidden, dim, GgmlType::kQ4_0, ++seed));
    t.push_back(RandomBlocks(p + "ffn_up.weight", hidden, dim, GgmlType::kQ4_0, ++seed));
    t.push_back(RandomBlocks(p + "ffn_down.weight", dim, hidden, GgmlType::kQ4_0, ++seed));
  }
  t.push_back(Ones("output_norm.weight", dim));
  t.push_back(RandomBlocks("output.weight", vocab, dim, GgmlType::kQ8_0, ++seed));
  return WriteGguf(path, meta, t);
}

struct Figure {
  double seconds = -1, peak_mib = -1;
  long long bytes = 0;
  std::string kind;
};

// Runs this binary as `--load loader path` and parses its LOADED line.
bool Measure(const std::string& loader, const std::string& path, Figure* f) {
  const std::string cmd = "'/proc/" + std::to_string(getpid()) + "/exe' --load " + loader + " '" + path + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return false;
  char line[512] = {0}, kind[64] = {0};
  bool ok = false;
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    if (std::sscanf(line, "LOADED %lf %lf %lld %63s", &f->seconds, &f->peak_mib, &f->bytes, kind) == 4) ok = true;
  }
  f->kind = kind;
  return pclose(p) == 0 && ok;
}

int Main(std::vector<std::string> files) {
  std::string tmp_dir;
  if (files.empty()) {
    const char* env = std::getenv("SQUEEZE_GGUF_LAYERS");
    const int layers = env != nullptr && *env != '\0' ? std::atoi(env) : 1;
    const std::string tok = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/tok512.bin";
    if (!fs::exists(tok)) {
      std::printf("bench_gguf_load: %s is absent (../shared): no synthetic file, skipped\n", tok.c_str());
      return 0;
    }
    std::string templ = (fs::temp_directory_path() / "bench_gguf_load_XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    tmp_dir = templ;
    const std::string path = tmp_dir + "/llama7b-shapes-" + std::to_string(layers) + "layer-q4_0.gguf";
    const auto t0 = Clock::now();
    if (absl::Status s = WriteSynthetic(path, layers, tok); !s.ok()) {
      std::fprintf(stderr, "bench_gguf_load: %s\n", std::string(s.message()).c_str());
      fs::remove_all(tmp_dir);
      return 1;
    }
    std::printf("wrote %s (%.2f GB) in %.1f s\n", path.c_str(), fs::file_size(path) / 1e9,
                std::chrono::duration<double>(Clock::now() - t0).count());
    files.push_back(path);
  }
  std::vector<std::pair<std::string, double>> ratios;
  int rc = 0;
  std::printf("%-40s %-10s %9s %13s %14s %s\n", "file", "loader", "seconds", "peak RSS MiB", "linear MB", "q_proj kind");
  for (const std::string& path : files) {
    Figure fig[2];
    const char* loaders[2] = {"reference", "direct"};
    bool ok = true;
    for (int i = 0; i < 2; ++i) {
      if (!Measure(loaders[i], path, &fig[i])) {
        std::fprintf(stderr, "bench_gguf_load: %s failed on %s\n", loaders[i], path.c_str());
        ok = false;
        rc = 1;
        break;
      }
      std::printf("%-40s %-10s %9.2f %13.0f %14.1f %s\n", fs::path(path).filename().c_str(), loaders[i],
                  fig[i].seconds, fig[i].peak_mib, fig[i].bytes / 1e6, fig[i].kind.c_str());
    }
    if (!ok) continue;
    if (fig[0].bytes != fig[1].bytes || fig[0].kind != fig[1].kind) {
      std::fprintf(stderr, "bench_gguf_load: the two loaders built different layers on %s\n", path.c_str());
      rc = 1;
    }
    std::string name = fs::path(path).stem().string();
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    ratios.emplace_back("gguf_blocks_load_speed_" + name, fig[0].seconds / fig[1].seconds);
    ratios.emplace_back("gguf_blocks_load_memory_" + name, fig[0].peak_mib / fig[1].peak_mib);
  }
  if (!tmp_dir.empty()) fs::remove_all(tmp_dir);
  for (const auto& [n, r] : ratios) std::printf("RATIO %s %.3f\n", n.c_str(), r);
  return rc;
}

}  // namespace
}  // namespace squeeze

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--load") return squeeze::LoadOnce(argv[2], argv[3]);
  if (argc == 4 && std::string(argv[1]) == "--write") {
    const absl::Status s = squeeze::WriteSynthetic(argv[2], std::atoi(argv[3]),
                                                   std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/tok512.bin");
    if (!s.ok()) std::fprintf(stderr, "bench_gguf_load: %s\n", std::string(s.message()).c_str());
    return s.ok() ? 0 : 1;
  }
  return squeeze::Main(std::vector<std::string>(argv + 1, argv + argc));
}
