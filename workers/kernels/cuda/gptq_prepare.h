// Internal: the host-side steps GPU GPTQ and its CPU reference share
// (validation, dead columns, act-order permutation, dampening, fixed group
// parameters) and the assembly of the result. Plain C++.
#pragma once

#include <cstdint>
#include <vector>

#include "workers/kernels/cuda/gptq_gpu.h"
#include "workers/kernels/cuda/quant_grid_hd.h"

namespace squeeze::gpu::internal {

struct GptqPrepared {
  int64_t out = 0, in = 0;
  int64_t gs = 0, gpr = 0;    // effective group size, groups per row
  int64_t block = 0;          // effective block size (GPU sweep)
  GridArgs grid;
  std::vector<double> w;      // [out, in] row-major, processing order, dead columns zeroed
  std::vector<int64_t> perm;  // processing position -> input column
  std::vector<double> hp;     // [in, in] damped Hessian, processing order
  std::vector<int32_t> stored_group;  // [in] stored group of each processing position
  std::vector<GroupParams> fixed;     // [out, gpr] when known up front; empty = computed as groups start
  int64_t dead = 0;
  double damp = 0;
  bool dynamic() const { return fixed.empty(); }
};

GpuStatus PrepareGptq(const float* w, int64_t out, int64_t in, const double* hessian, const GptqGpuOptions& o,
                      GptqPrepared* p);

// codes [out, in] and params [out, gpr] in processing order / stored groups;
// row_loss [out].
void FinishGptq(const GptqPrepared& p, const GptqGpuOptions& o, const std::vector<int32_t>& codes,
                const std::vector<GroupParams>& params, const std::vector<double>& row_loss, GptqGpuResult* r);

// The column-by-column sweep on the host: w [out, in] row-major (updated in
// place), u column-major upper factor; fills codes / params / row_loss.
void GptqSweepReference(const GptqPrepared& p, std::vector<double>& w, const std::vector<double>& u,
                        std::vector<int32_t>& codes, std::vector<GroupParams>& params,
                        std::vector<double>& row_loss);

}  // namespace squeeze::gpu::internal
