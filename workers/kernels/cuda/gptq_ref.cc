// Host side of GPTQ: the shared preparation / result assembly and the plain
// CPU references (see gptq_gpu.h).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>

#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/gptq_prepare.h"

namespace squeeze::gpu {
namespace internal {
namespace {

struct RowGet {  // float values of a row-major slice
  const float* v;
  SQ_HD float operator()(int64_t i) const { return v[i]; }
};
struct DoubleRowGet {
  const double* v;
  float operator()(int64_t i) const { return static_cast<float>(v[i]); }
};

}  // namespace

GpuStatus PrepareGptq(const float* w, int64_t out, int64_t in, const double* hessian, const GptqGpuOptions& o,
                      GptqPrepared* p) {
  auto err = [](const std::string& s) { return GpuStatus::Error("GPTQ: " + s); };
  if (o.num_bits < 2 || o.num_bits > 8) return err("num_bits " + std::to_string(o.num_bits) + " is outside 2..8");
  if (o.strategy < 0 || o.strategy > 2) return err("strategy " + std::to_string(o.strategy) + " is not 0, 1 or 2");
  if (o.strategy == 2 && o.group_size <= 0) return err("group_size " + std::to_string(o.group_size) + " must be positive");
  if (o.block_size <= 0) return err("block_size " + std::to_string(o.block_size) + " must be positive");
  if (!(o.dampening_frac >= 0.0) || !std::isfinite(o.dampening_frac)) return err("dampening_frac must be >= 0");
  if (o.actorder < 0 || o.actorder > 2) return err("actorder " + std::to_string(o.actorder) + " is not 0, 1 or 2");
  if (out <= 0 || in <= 0) return err("empty weight [" + std::to_string(out) + ", " + std::to_string(in) + "]");
  if (w == nullptr || hessian == nullptr) return err("w and hessian must not be null");
  for (int64_t i = 0; i < in * in; ++i) {
    if (!std::isfinite(hessian[i])) return err("Hessian has non-finite values");
  }
  p->out = out;
  p->in = in;
  p->grid.num_bits = o.num_bits;
  p->grid.symmetric = o.symmetric;
  p->grid.mse = o.mse_observer;
  p->gs = o.strategy == 2 ? std::min<int64_t>(o.group_size, in) : in;
  p->gpr = (in + p->gs - 1) / p->gs;

  std::vector<double> h(hessian, hessian + in * in);
  std::vector<float> w0(w, w + out * in);
  p->dead = 0;
  for (int64_t c = 0; c < in; ++c) {
    if (h[c * in + c] == 0.0) {
      h[c * in + c] = 1.0;
      for (int64_t r = 0; r < out; ++r) w0[r * in + c] = 0.0f;
      ++p->dead;
    }
  }
  p->fixed.clear();
  if (o.strategy != 2 || o.actorder == 1) {
    const int64_t gpr = p->gpr, gs = p->gs;
    p->fixed.resize(static_cast<size_t>(out * gpr));
    if (o.strategy == 0) {
      std::fill(p->fixed.begin(), p->fixed.end(), GridComputeParams(RowGet{w0.data()}, out * in, p->grid));
    } else {
      for (int64_t r = 0; r < out; ++r) {
        for (int64_t g = 0; g < gpr; ++g) {
          const int64_t c0 = g * gs, c1 = std::min(in, c0 + gs);
          p->fixed[r * gpr + g] = GridComputeParams(RowGet{w0.data() + r * in + c0}, c1 - c0, p->grid);
        }
      }
    }
  }
  p->perm.resize(static_cast<size_t>(in));
  std::iota(p->perm.begin(), p->perm.end(), int64_t{0});
  if (o.actorder != 0) {
    std::stable_sort(p->perm.begin(), p->perm.end(),
                     [&](int64_t x, int64_t y) { return h[x * in + x] > h[y * in + y]; });
  }
  p->hp.resize(static_cast<size_t>(in * in));
  p->w.resize(static_cast<size_t>(out * in));
  for (int64_t j = 0; j < in; ++j) {
    const int64_t pj = p->perm[j];
    for (int64_t k = 0; k < in; ++k) p->hp[j * in + k] = h[pj * in + p->perm[k]];
    for (int64_t r = 0; r < out; ++r) p->w[r * in + j] = static_cast<double>(w0[r * in + pj]);
  }
  double diag = 0.0;
  for (int64_t j = 0; j < in; ++j) diag += p->hp[j * in + j];
  p->damp = o.dampening_frac * (diag / static_cast<double>(in));
  for (int64_t j = 0; j < in; ++j) p->hp[j * in + j] += p->damp;
  p->stored_group.resize(static_cast<size_t>(in));
  for (int64_t j = 0; j < in; ++j) {
    p->stored_group[j] = static_cast<int32_t>(o.actorder == 2 ? j / p->gs : p->perm[j] / p->gs);
  }
  p->block = p->dynamic() ? (o.block_size + p->gs - 1) / p->gs * p->gs : o.block_size;
  return GpuStatus::Ok();
}

void FinishGptq(const GptqPrepared& p, const GptqGpuOptions& o, const std::vector<int32_t>& codes,
                const std::vector<GroupParams>& params, const std::vector<double>& row_loss, GptqGpuResult* r) {
  const int64_t out = p.out, in = p.in;
  r->codes.assign(static_cast<size_t>(out * in), 0);
  for (int64_t row = 0; row < out; ++row) {
    for (int64_t j = 0; j < in; ++j) r->codes[row * in + p.perm[j]] = codes[row * in + j];
  }
  r->scales.resize(params.size());
  r->zeros.clear();
  if (!o.symmetric) r->zeros.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    r->scales[i] = params[i].scale;
    if (!o.symmetric) r->zeros[i] = params[i].zero;
  }
  r->g_idx.clear();
  if (o.actorder == 2 && o.strategy == 2) {
    r->g_idx.resize(static_cast<size_t>(in));
    for (int64_t j = 0; j < in; ++j) r->g_idx[p.perm[j]] = static_cast<int32_t>(j / p.gs);
  }
  r->loss = 0.0;
  for (double l : row_loss) r->loss += l;
  r->dead_columns = p.dead;
  r->damp = p.damp;
}

void GptqSweepReference(const GptqPrepared& p, std::vector<double>& w, const std::vector<double>& u,
                        std::vector<int32_t>& codes, std::vector<GroupParams>& params,
                        std::vector<double>& row_loss) {
  const int64_t out = p.out, in = p.in, gpr = p.gpr;
  // U row-major for cache-friendly rows U(j, .).
  std::vector<double> ur(static_cast<size_t>(in * in), 0.0);
  for (int64_t j = 0; j < in; ++j) {
    for (int64_t k = j; k < in; ++k) ur[j * in + k] = u[j + k * in];
  }
  codes.assign(static_cast<size_t>(out * in), 0);
  params = p.fixed;
  if (p.dynamic()) params.assign(static_cast<size_t>(out * gpr), GroupParams{});
  row_loss.assign(static_cast<size_t>(out), 0.0);
  std::vector<double> err(static_cast<size_t>(out));
  for (int64_t j = 0; j < in; ++j) {
    const int64_t g = p.stored_group[j];
    if (p.dynamic() && j % p.gs == 0) {
      const int64_t n = std::min(in, j + p.gs) - j;
      for (int64_t r = 0; r < out; ++r) {
        params[r * gpr + g] = GridComputeParams(DoubleRowGet{w.data() + r * in + j}, n, p.grid);
      }
    }
    const double d = ur[j * in + j];
    for (int64_t r = 0; r < out; ++r) {
      const double v = w[r * in + j];
      const GroupParams& gp = params[r * gpr + g];
      const int32_t c = GridQuantCode(static_cast<float>(v), gp, p.grid);
      codes[r * in + j] = c;
      const double e = v - static_cast<double>(GridDequant(c, gp));
      err[r] = e / d;
      row_loss[r] += e * e / (d * d) / 2.0;
    }
    const double* uj = ur.data() + j * in;
    for (int64_t r = 0; r < out; ++r) {
      double* wr = w.data() + r * in;
      const double er = err[r];
      for (int64_t k = j + 1; k < in; ++k) wr[k] -= er * uj[k];
    }
  }
}

}  // namespace internal

void HessianAccumulateReference(const float* x, int64_t rows, int64_t in, double* h) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* xi = x + i * in;
    for (int64_t a = 0; a < in; ++a) {
      const double xa = xi[a];
      for (int64_t b = 0; b < in; ++b) h[a * in + b] += xa * static_cast<double>(xi[b]);
    }
  }
}

namespace {
// Lower Cholesky factor of the symmetric row-major a, in place (lower
// triangle, upper zeroed); false when not positive definite.
bool CholeskyLowerInPlace(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double s = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) s -= a[j * n + k] * a[j * n + k];
    if (!(s > 0.0) || !std::isfinite(s)) return false;
    const double ljj = std::sqrt(s);
    a[j * n + j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double t = a[i * n + j];
      for (int64_t k = 0; k < j; ++k) t -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = t / ljj;
    }
    for (int64_t k = j + 1; k < n; ++k) a[j * n + k] = 0.0;
  }
  return true;
}
}  // namespace

bool InverseCholeskyUpperReference(std::vector<double>& a, int64_t n) {
  if (!CholeskyLowerInPlace(a, n)) return false;
  // Linv = L^-1 (lower), column by column.
  std::vector<double> li(static_cast<size_t>(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    li[c * n + c] = 1.0 / a[c * n + c];
    for (int64_t i = c + 1; i < n; ++i) {
      double s = 0.0;
      for (int64_t k = c; k < i; ++k) s += a[i * n + k] * li[k * n + c];
      li[i * n + c] = -s / a[i * n + i];
    }
  }
  // a^-1 = Linv^T Linv (symmetric; both triangles written).
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int64_t k = i; k < n; ++k) s += li[k * n + i] * li[k * n + j];
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  // a^-1 = L2 L2^T; U = L2^T. Row-major L2 is column-major U.
  if (!CholeskyLowerInPlace(a, n)) return false;
  for (double v : a) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

GpuStatus GptqQuantizeReference(const float* w, int64_t out, int64_t in, const double* hessian,
                                const GptqGpuOptions& options, GptqGpuResult* result) {
  internal::GptqPrepared p;
  GpuStatus s = internal::PrepareGptq(w, out, in, hessian, options, &p);
  if (!s.ok()) return s;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> u = p.hp;
  if (!InverseCholeskyUpperReference(u, in)) {
    return GpuStatus::Error(
        "GPTQ: the damped Hessian is not positive definite (increase dampening_frac or the number of calibration "
        "samples)");
  }
  const auto t1 = std::chrono::steady_clock::now();
  std::vector<double> wk = p.w;
  std::vector<int32_t> codes;
  std::vector<GroupParams> params;
  std::vector<double> row_loss;
  internal::GptqSweepReference(p, wk, u, codes, params, row_loss);
  const auto t2 = std::chrono::steady_clock::now();
  internal::FinishGptq(p, options, codes, params, row_loss, result);
  result->factor_seconds = std::chrono::duration<double>(t1 - t0).count();
  result->sweep_seconds = std::chrono::duration<double>(t2 - t1).count();
  return GpuStatus::Ok();
}

}  // namespace squeeze::gpu
