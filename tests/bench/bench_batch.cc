// bench_batch: decode / prefill throughput of the batched forward
// (ForwardBatch, engine/model/forward_batch.h) against the sequential
// baseline (the B sequences one after another through Forward, the protocol
// MeasureLatency used before batching, still there as
// LatencyOptions::batched = false), both measured in the same run on the
// same model, prompts and greedy tokens.
//
// One round, per batch size B and protocol: B random prompts of `prompt`
// tokens are prefilled (last-token logits), then `decode` greedy steps of one
// token per sequence are run. Rounds alternate the two protocols so machine
// load hits both alike. Two clocks are read around each phase:
//  - wall (steady_clock): what latency.h reports;
//  - process CPU time (CLOCK_PROCESS_CPUTIME_ID): with SQUEEZE_THREADS=1 it
//    counts only the work done, so it stays meaningful on a machine shared
//    with other jobs (wall time then mostly measures the scheduler).
// Printed per model and B: the median over rounds of decode and prefill
// tokens/s (tokens of all B streams) by each clock, and
//   RATIO decode_batched_vs_sequential_<m>_b<b>_<cpu|wall> <x>
//   RATIO prefill_batched_vs_sequential_<m>_b<b>_<cpu|wall> <x>
// (> 1: batching is faster).
//
// Models: stories260K (../shared; skipped when absent) and a synthetic model
// of mid-size shapes (dim 1024, hidden 2816, 16 heads, 4 layers, vocab 8000:
// linears big enough that reading the weights dominates a decode step).
//
// Run: build-*/tests/bench/bench_batch [rounds=5] [prompt=64] [decode=32] [models=stories,synthetic]
// Threads: SQUEEZE_THREADS (default: all cores).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/forward_batch.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

struct Clocks {
  double wall = 0, cpu = 0;  // seconds
  static Clocks Now() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    Clocks c;
    c.cpu = ts.tv_sec + 1e-9 * ts.tv_nsec;
    c.wall = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return c;
  }
  Clocks operator-(const Clocks& o) const { return {wall - o.wall, cpu - o.cpu}; }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

int Argmax(const float* x, int64_t n) { return static_cast<int>(std::max_element(x, x + n) - x); }

struct Phase {
  Clocks prefill, decode;
};

// One round of protocol `batched` at batch B; aborts on a forward error.
Phase RunRound(const Model& m, int batch, bool batched, int prompt, int decode, uint64_t seed,
               ForwardBatchScratch& scratch) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int>> prompts(batch, std::vector<int>(prompt));
  for (auto& p : prompts) {
    for (int& t : p) t = static_cast<int>(rng() % m.config.vocab_size);
  }
  std::vector<KVCache> caches;
  for (int b = 0; b < batch; ++b) caches.emplace_back(m, prompt + decode);
  std::vector<int> next(batch), tokens(batch);
  std::vector<BatchSequence> seqs(batch);
  MatrixRM logits;
  const int64_t vocab = m.config.vocab_size;
  auto check = [](const absl::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "forward failed: %s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
  };
  Phase ph;
  const Clocks t0 = Clocks::Now();
  if (batched) {
    for (int b = 0; b < batch; ++b) seqs[b] = {prompts[b], 0, &caches[b]};
    check(ForwardBatch(m, seqs, logits, false, ThreadPool::Default(), &scratch));
    for (int b = 0; b < batch; ++b) next[b] = Argmax(&logits(b, 0), vocab);
  } else {
    for (int b = 0; b < batch; ++b) {
      check(Forward(m, prompts[b], 0, caches[b], logits, false));
      next[b] = Argmax(logits.data(), vocab);
    }
  }
  const Clocks t1 = Clocks::Now();
  for (int s = 0; s < decode; ++s) {
    tokens = next;
    if (batched) {
      for (int b = 0; b < batch; ++b) seqs[b] = {absl::MakeConstSpan(&tokens[b], 1), prompt + s, &caches[b]};
      check(ForwardBatch(m, seqs, logits, false, ThreadPool::Default(), &scratch));
      for (int b = 0; b < batch; ++b) next[b] = Argmax(&logits(b, 0), vocab);
    } else {
      for (int b = 0; b < batch; ++b) {
        check(Forward(m, absl::MakeConstSpan(&tokens[b], 1), prompt + s, caches[b], logits, false));
        next[b] = Argmax(logits.data(), vocab);
      }
    }
  }
  const Clocks t2 = Clocks::Now();
  ph.prefill = t1 - t0;
  ph.decode = t2 - t1;
  return ph;
}

void Run(const std::string& name, const Model& model, int rounds, int prompt, int decode) {
  std::printf("\n%s (prompt %d, decode %d, %d rounds + 1 warm-up, threads %d)\n", name.c_str(), prompt, decode,
              rounds, ThreadPool::Default().size());
  std::printf("%-5s %-5s %14s %14s %15s %15s\n", "B", "clock", "dec seq tok/s", "dec bat tok/s", "pre seq tok/s",
              "pre bat tok/s");
  for (int batch : {1, 8}) {
    // [protocol] -> per-round tokens/s
    std::vector<double> dec_cpu[2], dec_wall[2], pre_cpu[2], pre_wall[2];
    ForwardBatchScratch scratch;
    for (int r = 0; r <= rounds; ++r) {
      for (int batched = 0; batched < 2; ++batched) {
        const Phase ph = RunRound(model, batch, batched == 1, prompt, decode, 1000 + r, scratch);
        if (r == 0) continue;  // warm-up
        const double dtok = double{1} * batch * decode, ptok = double{1} * batch * prompt;
        dec_cpu[batched].push_back(dtok / ph.decode.cpu);
        dec_wall[batched].push_back(dtok / ph.decode.wall);
        pre_cpu[batched].push_back(ptok / ph.prefill.cpu);
        pre_wall[batched].push_back(ptok / ph.prefill.wall);
      }
    }
    for (const char* clock : {"cpu", "wall"}) {
      const bool cpu = clock[0] == 'c';
      const double ds = Median(cpu ? dec_cpu[0] : dec_wall[0]), db = Median(cpu ? dec_cpu[1] : dec_wall[1]);
      const double ps = Median(cpu ? pre_cpu[0] : pre_wall[0]), pb = Median(cpu ? pre_cpu[1] : pre_wall[1]);
      std::printf("%-5d %-5s %14.0f %14.0f %15.0f %15.0f\n", batch, clock, ds, db, ps, pb);
      std::printf("RATIO decode_batched_vs_sequential_%s_b%d_%s %.3f\n", name.c_str(), batch, clock,
                  db / ds);
      std::printf("RATIO prefill_batched_vs_sequential_%s_b%d_%s %.3f\n", name.c_str(), batch, clock,
                  pb / ps);
    }
  }
}

}  // namespace
}  // namespace squeeze

int main(int argc, char** argv) {
  using namespace squeeze;
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const int prompt = argc > 2 ? std::max(1, std::atoi(argv[2])) : 64;
  const int decode = argc > 3 ? std::max(1, std::atoi(argv[3])) : 32;
  const std::string models = argc > 4 ? argv[4] : "stories,synthetic";
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (models.find("stories") != std::string::npos) {
    const std::string stories = std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K/stories260K.bin";
    if (std::filesystem::exists(stories)) {
      auto m = LoadModel(stories);
      if (!m.ok()) {
        std::fprintf(stderr, "stories260K: %s\n", std::string(m.status().message()).c_str());
        return 1;
      }
      Run("stories260K", *m, rounds, prompt, decode);
    } else {
      std::printf("stories260K not found at %s (../shared is absent): skipped\n", stories.c_str());
    }
  }
  if (models.find("synthetic") != std::string::npos) {
    ModelConfig c;
    c.dim = 1024;
    c.hidden_dim = 2816;
    c.n_layers = 4;
    c.n_heads = 16;
    c.n_kv_heads = 16;
    c.head_dim = 64;
    c.vocab_size = 8000;
    c.max_seq_len = 512;
    c.tie_word_embeddings = false;
    Run("synthetic-1024x4", MakeRandomModel(c, 7), rounds, prompt, decode);
  }
  return 0;
}
