#include <climits>
#include <cmath>
#include <string>

#include "workers/kernels/cuda/fp16.h"
#include "workers/kernels/cuda/packed_int_gemv.h"

namespace squeeze::gpu {

// Host-side checks (plain C++, also used without CUDA).
GpuStatus ValidatePackedIntGpuWeights(const PackedIntGpuWeights& w) {
  auto err = [](const std::string& field, const std::string& why) {
    return GpuStatus::Error("PackedIntGpuWeights." + field + ": " + why);
  };
  if (w.num_bits != 4 && w.num_bits != 8) return err("num_bits", std::to_string(w.num_bits) + " (the GPU kernel takes 4 or 8)");
  if (w.rows <= 0 || w.rows >= INT_MAX) return err("rows", std::to_string(w.rows) + " must be in [1, 2^31)");
  if (w.cols <= 0 || w.cols >= INT_MAX / 2) return err("cols", std::to_string(w.cols) + " must be in [1, 2^30)");
  const int per_word = 32 / w.num_bits;
  const int64_t wpr = (w.cols + per_word - 1) / per_word;
  if (w.words_per_row != wpr) {
    return err("words_per_row", std::to_string(w.words_per_row) + ", expected ceil(cols / " + std::to_string(per_word) +
                                    ") = " + std::to_string(wpr));
  }
  if (w.groups_per_row < 1) return err("groups_per_row", std::to_string(w.groups_per_row) + " must be >= 1");
  if (w.groups_per_row > 1) {
    if (w.group_size <= 0 || w.group_size % per_word != 0) {
      return err("group_size", std::to_string(w.group_size) + " must be a positive multiple of " +
                                   std::to_string(per_word) + " on the GPU (other sizes run on the CPU)");
    }
    if ((w.cols + w.group_size - 1) / w.group_size != w.groups_per_row) {
      return err("groups_per_row", std::to_string(w.groups_per_row) + " does not match ceil(cols / group_size)");
    }
  }
  if (w.packed == nullptr) return err("packed", "null");
  if (w.scales == nullptr) return err("scales", "null");
  return GpuStatus::Ok();
}

int64_t PackedIntWeightBytes(const PackedIntGpuWeights& w) {
  const int64_t groups = w.rows * w.groups_per_row;
  return w.rows * w.words_per_row * 4 + groups * 4 + (w.zero_points != nullptr ? groups * 4 : 0);
}


void PackedIntGemvReference(const PackedIntGpuWeights& w, const uint16_t* x, int64_t n, const float* bias,
                            float* y, double* abs_sum) {
  const int per_word = 32 / w.num_bits;
  const uint32_t mask = (1u << w.num_bits) - 1u;
  const int32_t qmin = -(1 << (w.num_bits - 1));
  const int64_t gs = w.groups_per_row == 1 ? w.cols : w.group_size;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) {
      double acc = 0.0, abs_acc = 0.0;
      for (int64_t c = 0; c < w.cols; ++c) {
        const uint32_t word = w.packed[r * w.words_per_row + c / per_word];
        const int32_t q = static_cast<int32_t>((word >> ((c % per_word) * w.num_bits)) & mask) + qmin;
        const int64_t g = r * w.groups_per_row + c / gs;
        const int32_t z = w.zero_points != nullptr ? w.zero_points[g] : 0;
        const float wv = static_cast<float>(q - z) * w.scales[g];
        const double p = static_cast<double>(HalfToFloat(x[i * w.cols + c])) * static_cast<double>(wv);
        acc += p;
        abs_acc += std::fabs(p);
      }
      if (bias != nullptr) acc += static_cast<double>(bias[r]);
      y[i * w.rows + r] = static_cast<float>(acc);
      if (abs_sum != nullptr) abs_sum[i * w.rows + r] = abs_acc;
    }
  }
}

}  // namespace squeeze::gpu
