// bench_train: training throughput of the engine (workers/engine/train) on a
// randomly initialised Llama-family model, beside two baselines measured in
// the same run on the same shapes:
//   forward    TrainForward alone (the training forward, activations kept);
//   gemm       Eigen's fp32 GEMM time for the step's linear FLOPs: for every
//              linear (q, k, v, o, gate, up, down per block and the head) the
//              three products of a training step — Y = X W^T [N x in]x[in x
//              out], dX = dY W and dW = dY^T X — timed on their real shapes.
//              Attention score / value products and the element-wise ops are
//              not in the floor (at seq 128 they are a few % of the FLOPs).
// A step = TrainForward + cross-entropy (with its gradient) + TrainBackward,
// no optimizer (AdamW is O(params), negligible beside N x params).
// Output: tokens/s of each, `RATIO <name> <value>` lines (ours / baseline):
//   RATIO train_step_vs_forward          (the textbook value is ~3: backward
//                                         = 2 x forward FLOPs)
//   RATIO train_step_vs_gemm_floor       (> 1 = slower than Eigen's GEMMs)
//   RATIO forward_vs_gemm_forward_floor  (the forward against Y = X W^T only)
// Shape (env, defaults = llama2.c's stories15M): SQUEEZE_BENCH_DIM 288,
// _HIDDEN 768, _LAYERS 6, _HEADS 6, _VOCAB 32000, _BATCH 4, _SEQ 128, _REPS 3
// (median of reps). Threads: SQUEEZE_THREADS (default 2) for our pool; Eigen
// runs single-threaded here (it is built without OpenMP), so the GEMM floor
// is per core: divide RATIO train_step_vs_gemm_floor by the thread count for
// a per-core comparison (printed too).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <Eigen/Core>

#include "tests/bench/bench_util.h"
#include "workers/engine/core/thread_pool.h"
#include "workers/engine/train/losses.h"
#include "workers/engine/train/train_model.h"

namespace squeeze {
namespace {

using bench::Clock;
using bench::EnvInt;
using bench::Median;
using bench::Since;

// Seconds of the three training GEMMs of one [out x in] linear at N rows.
double LinearGemmSeconds(int n, int in, int out, int reps) {
  MatrixRM x = MatrixRM::Random(n, in), w = MatrixRM::Random(out, in), dy = MatrixRM::Random(n, out);
  MatrixRM y(n, out), dx(n, in), dw(out, in);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    y.noalias() = x * w.transpose();
    dx.noalias() = dy * w;
    dw.noalias() = dy.transpose() * x;
    t.push_back(Since(t0));
  }
  if (y(0, 0) + dx(0, 0) + dw(0, 0) == 12345.678f) std::puts("");  // keep the results alive
  return Median(t);
}
double LinearForwardGemmSeconds(int n, int in, int out, int reps) {
  MatrixRM x = MatrixRM::Random(n, in), w = MatrixRM::Random(out, in), y(n, out);
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    y.noalias() = x * w.transpose();
    t.push_back(Since(t0));
  }
  if (y(0, 0) == 12345.678f) std::puts("");
  return Median(t);
}

int Main() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.dim = EnvInt("SQUEEZE_BENCH_DIM", 288);
  c.hidden_dim = EnvInt("SQUEEZE_BENCH_HIDDEN", 768);
  c.n_layers = EnvInt("SQUEEZE_BENCH_LAYERS", 6);
  c.n_heads = EnvInt("SQUEEZE_BENCH_HEADS", 6);
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.dim / c.n_heads;
  c.vocab_size = EnvInt("SQUEEZE_BENCH_VOCAB", 32000);
  const int batch = EnvInt("SQUEEZE_BENCH_BATCH", 4), seq = EnvInt("SQUEEZE_BENCH_SEQ", 128);
  const int reps = std::max(1, EnvInt("SQUEEZE_BENCH_REPS", 3));
  c.max_seq_len = std::max(seq, 256);
  c.tie_word_embeddings = true;
  const int threads = std::max(1, EnvInt("SQUEEZE_THREADS", 2));
  ThreadPool pool(threads);
  train::TrainModel model = train::InitTrainModel(c, 1);
  const int n = batch * seq;
  std::vector<int> tokens(n), targets(n);
  for (int i = 0; i < n; ++i) {
    tokens[i] = (i * 7919 + 13) % c.vocab_size;
    targets[i] = (i * 104729 + 7) % c.vocab_size;
  }
  std::printf("bench_train: dim %d hidden %d layers %d heads %d vocab %d, batch %d x seq %d = %d tokens, %d threads\n",
              c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.vocab_size, batch, seq, n, threads);

  std::vector<double> fwd_t, step_t;
  for (int r = 0; r < reps + 1; ++r) {  // the first of each is a warm-up
    train::ForwardState st;
    auto t0 = Clock::now();
    if (auto s = train::TrainForward(model, tokens, batch, seq, false, &st, pool); !s.ok()) {
      std::fprintf(stderr, "forward: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    const double f = Since(t0);
    train::ForwardState st2;
    model.ZeroGrad();
    t0 = Clock::now();
    (void)train::TrainForward(model, tokens, batch, seq, false, &st2, pool);
    MatrixRM dlogits;
    const double loss = train::CrossEntropy(st2.logits, targets, 1.0, &dlogits, pool);  // mean over rows
    if (auto s = train::TrainBackward(model, st2, dlogits, pool); !s.ok()) {
      std::fprintf(stderr, "backward: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    const double b = Since(t0);
    if (r == 0) {
      std::printf("warm-up: forward %.3f s, step %.3f s, loss %.4f (ln vocab %.4f)\n", f, b, loss,
                  std::log(static_cast<double>(c.vocab_size)));
      continue;
    }
    fwd_t.push_back(f);
    step_t.push_back(b);
  }
  const double fwd = Median(fwd_t), step = Median(step_t);

  // The GEMM floor on the same shapes.
  const int qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  const struct { int in, out, count; } shapes[] = {{c.dim, qd, c.n_layers},          {c.dim, kvd, 2 * c.n_layers},
                                                   {qd, c.dim, c.n_layers},           {c.dim, c.hidden_dim, 2 * c.n_layers},
                                                   {c.hidden_dim, c.dim, c.n_layers}, {c.dim, c.vocab_size, 1}};
  double gemm = 0, gemm_fwd = 0, flops = 0;
  for (const auto& s : shapes) {
    gemm += s.count * LinearGemmSeconds(n, s.in, s.out, reps);
    gemm_fwd += s.count * LinearForwardGemmSeconds(n, s.in, s.out, reps);
    flops += s.count * 6.0 * n * s.in * s.out;
  }
  std::printf("forward only         %.4f s  %9.0f tokens/s\n", fwd, n / fwd);
  std::printf("forward + backward   %.4f s  %9.0f tokens/s  (%.2f GFLOP/s on the linear FLOPs)\n", step, n / step,
              flops / step / 1e9);
  std::printf("Eigen GEMM floor     %.4f s  %9.0f tokens/s  (%.2f GFLOP/s, 1 thread; forward GEMMs %.4f s)\n", gemm,
              n / gemm, flops / gemm / 1e9, gemm_fwd);
  std::printf("RATIO train_step_vs_forward %.3f\n", step / fwd);
  std::printf("RATIO train_step_vs_gemm_floor %.3f\n", step / gemm);
  std::printf("RATIO train_step_vs_gemm_floor_per_core %.3f\n", step * threads / gemm);
  std::printf("RATIO forward_vs_gemm_forward_floor %.3f\n", fwd / gemm_fwd);
  return 0;
}

}  // namespace
}  // namespace squeeze

int main() { return squeeze::Main(); }
