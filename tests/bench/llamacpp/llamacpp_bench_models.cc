// Our side of the llama.cpp comparison (tests/bench/llamacpp/run_llamacpp_bench.sh).
//
//   llamacpp_bench_models gen OUT_DIR TOKENIZER [LAYERS]
//     A random Llama model with real Llama-7B layer shapes (hidden 4096,
//     intermediate 11008, 32 heads of 128, vocab 32000, untied head) but only
//     LAYERS blocks (default 2, so that it fits a small machine), written by
//     our own exporters: GGUF F32 / Q8_0 / Q4_0 (formats/gguf_model.h) and
//     our format (SaveModel) with RTN int8 and int4, symmetric, group 32 (the
//     block size of Q8_0 / Q4_0). Weights uniform with variance 1/in (that
//     of MakeRandomModel, drawn faster), norms 1 +- 0.17.
//
//   llamacpp_bench_models run MODEL LOADER THREADS PROMPT_JSON TRIALS
//     Loads MODEL with LOADER: "gguf" (the reader's dense fp32 layers),
//     "gguf-blocks" (Q4_0 / Q8_0 kept as blocks, methods/quant/ggml_block_import.h)
//     "ours" (LoadModel of a SaveModel directory) or "ours-a8" (the same,
//     with the packed int4 / int8 layers on int8 activations:
//     SetPackedActivations, methods/quant/packed_int_linear.h). Then, on a pool of
//     THREADS, TRIALS times: prefill of the prompt's ids (one Forward, logits
//     of the last token) and decode of the decode ids one token at a time
//     (logits every token), as the .mjs does in llama.cpp. Prints the median
//     tokens/s, the weight bytes a decode token reads (every linear's
//     StorageBytes plus one embedding row) and a STREAM-like copy bandwidth
//     (THREADS threads, 2 x 256 MiB arrays, bytes read + written / time, best
//     of 5; measured in the same process before and after every trial, the
//     highest kept):
//       RESULT prefill_tps X decode_tps Y weight_bytes B copy_gbs C
//
//   llamacpp_bench_models layers MODEL LOADER THREADS TRIALS
//     Where a decode token's time goes: every linear alone on one row of x,
//     in model order; per kind (q_proj .. lm_head) ms per token and GB/s,
//     their sum and the copy bandwidth (see Layers below).
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "workers/engine/core/allocator_config.h"
#include "workers/engine/core/thread_pool.h"
#include "tests/bench/bench_model.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/methods/quant/ggml_block_import.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

int Fail(const absl::Status& s, const std::string& what) {
  std::fprintf(stderr, "llamacpp_bench_models: %s: %s\n", what.c_str(), std::string(s.message()).c_str());
  return 1;
}

ModelConfig Llama7BShapes(int layers) {
  ModelConfig c = bench::Llama7BLayerShapes(layers, 4096);
  c.vocab_size = 32000;  // Llama's vocabulary: the head is part of each token's time
  c.norm_eps = 1e-5f;
  c.tie_word_embeddings = false;
  return c;
}

// Uniform in [-a, a] from a counter hash (splitmix64): fast and parallel, so
// that writing the 0.67 G-parameter model is not dominated by drawing it.
void FillUniform(float* v, int64_t n, float a, uint64_t seed, ThreadPool& pool) {
  pool.ParallelFor(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      uint64_t z = seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(i) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      v[i] = a * (static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
  });
}

// Random weights with the variance of MakeRandomModel (1 / in for linears,
// so activations stay O(1); norms 1 +- 0.17), drawn uniform for speed.
Model RandomLlama(const ModelConfig& c, ThreadPool& pool) {
  uint64_t seed = 1;
  auto linear = [&](int64_t out, int64_t in) {
    MatrixRM w(out, in);
    FillUniform(w.data(), w.size(), std::sqrt(3.0f / in), ++seed, pool);
    return DenseLinear::FromMatrix(std::move(w));
  };
  auto norm = [&](int64_t n) {
    std::vector<float> v(n);
    FillUniform(v.data(), n, 0.17f, ++seed, pool);
    for (float& x : v) x += 1.0f;
    return v;
  };
  Model m;
  m.config = c;
  m.embedding = MatrixRM(c.vocab_size, c.dim);
  FillUniform(m.embedding.data(), m.embedding.size(), std::sqrt(3.0f), ++seed, pool);
  for (int l = 0; l < c.n_layers; ++l) {
    TransformerBlock b;
    b.attn_norm = norm(c.dim);
    b.ffn_norm = norm(c.dim);
    b.q_proj = linear(c.n_heads * c.head_dim, c.dim);
    b.k_proj = linear(c.n_kv_heads * c.head_dim, c.dim);
    b.v_proj = linear(c.n_kv_heads * c.head_dim, c.dim);
    b.o_proj = linear(c.dim, c.n_heads * c.head_dim);
    b.gate_proj = linear(c.hidden_dim, c.dim);
    b.up_proj = linear(c.hidden_dim, c.dim);
    b.down_proj = linear(c.dim, c.hidden_dim);
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = norm(c.dim);
  m.lm_head = linear(c.vocab_size, c.dim);
  return m;
}

int Gen(const std::string& out, const std::string& tokenizer, int layers) {
  const auto t0 = Clock::now();
  ThreadPool& pool = ThreadPool::Default();
  Model model = RandomLlama(Llama7BShapes(layers), pool);
  std::fprintf(stderr, "random model (%d layers): %.1f s\n", layers, Seconds(t0, Clock::now()));
  for (GgmlType type : {GgmlType::kF32, GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    std::string name(GgmlTypeName(type));
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    const std::string path = out + "/model-" + name + ".gguf";
    const auto t = Clock::now();
    auto r = ExportGguf(model, tokenizer, path, {type, /*allow_fallback=*/false, "llama7b-shapes-random"});
    if (!r.ok()) return Fail(r.status(), path);
    std::fprintf(stderr, "%s: %.2f GB, %.1f s\n", path.c_str(), r->bytes / 1e9, Seconds(t, Clock::now()));
  }
  // Our format: every linear (the head too, as the GGUF files quantize
  // output.weight) RTN-quantized, then saved; quantized one bit width at a
  // time from the fp32 model so that memory holds one copy of each.
  for (int bits : {8, 4}) {
    Model q;
    q.config = model.config;
    q.embedding = model.embedding;
    q.final_norm = model.final_norm;
    q.blocks.resize(model.blocks.size());
    for (size_t l = 0; l < model.blocks.size(); ++l) {
      q.blocks[l].attn_norm = model.blocks[l].attn_norm;
      q.blocks[l].ffn_norm = model.blocks[l].ffn_norm;
    }
    WeightQuantArgs args;
    args.num_bits = bits;
    args.symmetric = true;
    args.strategy = QuantStrategy::kGroup;
    args.group_size = 32;
    std::vector<LinearSlot> src = model.AllLinears();
    q.lm_head = nullptr;
    std::vector<std::unique_ptr<LinearLayer>*> dst;
    for (size_t l = 0; l < q.blocks.size(); ++l) {
      for (LinearSlot& s : q.BlockLinears(static_cast<int>(l))) dst.push_back(s.slot);
    }
    dst.push_back(&q.lm_head);
    const auto t = Clock::now();
    // One layer per pool task (QuantizeRtn itself is single-threaded).
    std::vector<absl::Status> status(src.size());
    pool.ParallelFor(static_cast<int64_t>(src.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        auto layer = QuantizeRtn((*src[i].slot)->DenseWeight(), args);
        if (!layer.ok()) {
          status[i] = layer.status();
          continue;
        }
        *dst[i] = std::move(*layer);
      }
    });
    for (size_t i = 0; i < src.size(); ++i) {
      if (!status[i].ok()) return Fail(status[i], src[i].name);
    }
    const std::string dir = out + "/ours-int" + std::to_string(bits);
    if (absl::Status s = SaveModel(q, dir); !s.ok()) return Fail(s, dir);
    std::fprintf(stderr, "%s: %.1f s\n", dir.c_str(), Seconds(t, Clock::now()));
  }
  return 0;
}

double CopyBandwidthGBs(ThreadPool& pool) {
  const size_t n = size_t{256} << 20;
  std::vector<char> a(n, 1), b(n, 0);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t = Clock::now();
    const int64_t chunks = pool.size() * 16;
    pool.ParallelFor(chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) std::memcpy(b.data() + c * (n / chunks), a.data() + c * (n / chunks), n / chunks);
    });
    best = std::min(best, Seconds(t, Clock::now()));
  }
  if (b[n / 2] != 1) std::fprintf(stderr, "copy check failed\n");
  return 2.0 * n / best / 1e9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Loads MODEL with LOADER (see the top of this file).
absl::StatusOr<Model> LoadForBench(const std::string& path, const std::string& loader) {
  RegisterMethodLinearLoaders();
  Model model;
  const auto t0 = Clock::now();
  if (loader == "gguf" || loader == "gguf-blocks") {
    auto m = loader == "gguf" ? LoadGgufModel(path) : LoadGgufModelWithBlocks(path);
    if (!m.ok()) return m.status();
    model = std::move(m->model);
  } else if (loader == "ours" || loader == "ours-a8") {
    auto m = LoadModel(path);
    if (!m.ok()) return m.status();
    model = std::move(*m);
    if (loader == "ours-a8") {
      const int64_t n = SetPackedActivations(model, PackedActivations::kInt8);
      if (n == 0) return absl::InvalidArgumentError("no packed int layer takes int8 activations");
      std::fprintf(stderr, "%lld packed layers on int8 activations\n", static_cast<long long>(n));
    }
  } else {
    return absl::InvalidArgumentError("loader must be gguf, gguf-blocks, ours or ours-a8: " + loader);
  }
  std::fprintf(stderr, "loaded %s (%s, first layer %s) in %.1f s\n", path.c_str(), loader.c_str(),
               model.blocks[0].q_proj->kind().c_str(), Seconds(t0, Clock::now()));
  return model;
}

// Where a decode token's time goes: every linear's Forward on one row, in
// the model's order (as a decode step reads them), TRIALS passes; prints per
// linear name suffix (q_proj, ..., lm_head) the median time per pass and its
// weight GB/s, and the sum, next to the copy bandwidth:
//   LAYER <name> ms <t> gbs <g>
//   LAYERS_TOTAL ms <t> gbs <g> copy_gbs <c>
int Layers(const std::string& path, const std::string& loader, int threads, int trials) {
  absl::StatusOr<Model> loaded = LoadForBench(path, loader);
  if (!loaded.ok()) return Fail(loaded.status(), path);
  Model& model = *loaded;
  ThreadPool pool(threads);
  const double copy_gbs = CopyBandwidthGBs(pool);
  std::vector<LinearSlot> slots = model.AllLinears();
  std::vector<std::string> kinds;  // the name after the last '.'
  for (const LinearSlot& s : slots) {
    const std::string k = s.name.substr(s.name.rfind('.') + 1);
    if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
  }
  std::vector<std::vector<double>> ms(kinds.size());
  std::vector<int64_t> bytes(kinds.size(), 0);
  std::vector<float> x, y;
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<double> pass(kinds.size(), 0.0);
    for (const LinearSlot& s : slots) {
      const LinearLayer& layer = **s.slot;
      const size_t k = std::find(kinds.begin(), kinds.end(), s.name.substr(s.name.rfind('.') + 1)) - kinds.begin();
      x.assign(static_cast<size_t>(layer.in_features()), 0.5f);
      for (size_t c = 0; c < x.size(); c += 7) x[c] = -1.25f;
      y.resize(static_cast<size_t>(layer.out_features()));
      const auto t = Clock::now();
      layer.Forward(x.data(), 1, y.data(), pool);
      pass[k] += Seconds(t, Clock::now()) * 1e3;
      if (trial == 0) bytes[k] += layer.StorageBytes();
    }
    for (size_t k = 0; k < kinds.size(); ++k) ms[k].push_back(pass[k]);
  }
  double total_ms = 0;
  int64_t total_bytes = 0;
  for (size_t k = 0; k < kinds.size(); ++k) {
    const double t = Median(ms[k]);
    total_ms += t;
    total_bytes += bytes[k];
    std::printf("LAYER %s ms %.3f gbs %.2f\n", kinds[k].c_str(), t, bytes[k] / (t * 1e6));
  }
  std::printf("LAYERS_TOTAL ms %.3f gbs %.2f copy_gbs %.3f\n", total_ms, total_bytes / (total_ms * 1e6), copy_gbs);
  return 0;
}

int Run(const std::string& path, const std::string& loader, int threads, const std::string& prompt_json, int trials) {
  absl::StatusOr<Model> loaded = LoadForBench(path, loader);
  if (!loaded.ok()) return Fail(loaded.status(), path);
  Model model = std::move(*loaded);
  std::ifstream in(prompt_json);
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json req = nlohmann::json::parse(ss.str());
  const std::vector<int> prompt = req.at("prompt_ids").get<std::vector<int>>();
  const std::vector<int> decode = req.at("decode_ids").get<std::vector<int>>();
  ThreadPool pool(threads);
  int64_t weight_bytes = model.config.dim * int64_t{sizeof(float)};  // one embedding row
  for (LinearSlot& s : model.AllLinears()) weight_bytes += (*s.slot)->StorageBytes();
  // The best of copies before and after every trial: on a shared machine
  // the bandwidth drifts, and one measurement at a quiet moment next to
  // decode at a busy one (or the reverse) skews the decode bandwidth fraction.
  double copy_gbs = CopyBandwidthGBs(pool);

  std::vector<double> prefill_tps, decode_tps;
  for (int trial = 0; trial < trials; ++trial) {
    KVCache cache(model, static_cast<int>(prompt.size() + decode.size()));
    MatrixRM logits;
    auto t = Clock::now();
    if (absl::Status s = Forward(model, prompt, 0, cache, logits, false, pool); !s.ok()) return Fail(s, "prefill");
    prefill_tps.push_back(prompt.size() / Seconds(t, Clock::now()));
    t = Clock::now();
    for (size_t i = 0; i < decode.size(); ++i) {
      absl::Status s = Forward(model, absl::MakeConstSpan(&decode[i], 1), static_cast<int>(prompt.size() + i), cache,
                               logits, false, pool);
      if (!s.ok()) return Fail(s, "decode");
    }
    decode_tps.push_back(decode.size() / Seconds(t, Clock::now()));
    copy_gbs = std::max(copy_gbs, CopyBandwidthGBs(pool));
    std::fprintf(stderr, "  trial %d: prefill %.2f tok/s, decode %.2f tok/s\n", trial, prefill_tps.back(),
                 decode_tps.back());
  }
  std::printf("RESULT prefill_tps %.4f decode_tps %.4f weight_bytes %lld copy_gbs %.3f\n", Median(prefill_tps),
              Median(decode_tps), static_cast<long long>(weight_bytes), copy_gbs);
  return 0;
}

}  // namespace
}  // namespace squeeze

int main(int argc, char** argv) {
  squeeze::ConfigureAllocatorForInference();  // warm heap pages across forward passes
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "gen" && (argc == 4 || argc == 5)) return squeeze::Gen(argv[2], argv[3], argc == 5 ? std::atoi(argv[4]) : 2);
  if (cmd == "run" && argc == 7) return squeeze::Run(argv[2], argv[3], std::atoi(argv[4]), argv[5], std::atoi(argv[6]));
  if (cmd == "layers" && argc == 6) return squeeze::Layers(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]));
  std::fprintf(stderr,
               "usage: llamacpp_bench_models gen OUT_DIR TOKENIZER [LAYERS]\n"
               "       llamacpp_bench_models run MODEL gguf|gguf-blocks|ours|ours-a8 THREADS PROMPT_JSON TRIALS\n"
               "       llamacpp_bench_models layers MODEL LOADER THREADS TRIALS  (per-linear decode time)\n"
               "  ours-a8: our packed int4/int8 layers with int8 activations (--packed-activations int8)\n");
  return 2;
}
