#include <Eigen/Core>

#include "workers/engine/core/tensor.h"
#include "workers/engine/train/trainable_linear.h"
#include "workers/kernels/cpu/transformer_ops.h"

namespace squeeze::train {

void MatMulNT(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y, ThreadPool& pool) {
  kernels::GemmNT(x, n, k, w, m, y, pool);
}

void MatMulNN(const float* dy, int64_t n, int64_t m, const float* w, int64_t k, float* dx, ThreadPool& pool) {
  ConstMapMatrixRM DY(dy, n, m);
  ConstMapMatrixRM W(w, m, k);
  MapMatrixRM DX(dx, n, k);
  // Chunks over the k output columns; each chunk's arithmetic is fixed by the shape.
  kernels::ForEachColumnChunk(n, k, m, pool, [&](int64_t b, int64_t e) {
    DX.middleCols(b, e - b).noalias() = DY * W.middleCols(b, e - b);
  });
}

void AccumulateTN(const float* dy, int64_t n, int64_t m, const float* x, int64_t k, float* dw, ThreadPool& pool) {
  ConstMapMatrixRM DY(dy, n, m);
  ConstMapMatrixRM X(x, n, k);
  MapMatrixRM DW(dw, m, k);
  // Chunks over the m rows of dW.
  kernels::ForEachColumnChunk(k, m, n, pool, [&](int64_t b, int64_t e) {
    DW.middleRows(b, e - b).noalias() += DY.middleCols(b, e - b).transpose() * X;
  });
}

void AccumulateColumnSums(const float* dy, int64_t n, int64_t m, float* db) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < m; ++c) db[c] += dy[r * m + c];
}

}  // namespace squeeze::train
