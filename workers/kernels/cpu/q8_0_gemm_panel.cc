// The ggml block panel repacker and the prefill path of GgmlBlockGemmQ8;
// see q8_0_gemm_panel.h.
#include "workers/kernels/cpu/q8_0_gemm_panel.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "workers/kernels/cpu/cpu_features.h"

namespace squeeze::kernels {
namespace {

// Points `panel` at `buffers` sized for w's rows from r0.
void SetUpPanel(const GgmlBlockWeights& w, int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel) {
  const int64_t nb = w.blocks_per_row();
  buffers->Reserve(nb, nb);
  panel->rows = std::min<int64_t>(kPanelRows, w.rows - r0);
  panel->chunks = nb;
  panel->chunks_per_group = 1;
  panel->groups = nb;
  panel->codes = buffers->codes();
  panel->scales = buffers->scales();
  panel->zo = nullptr;
  panel->zo_const = w.kind == GgmlBlockKind::kQ4_0 ? 8 : 128;
  panel->code_bits = w.kind == GgmlBlockKind::kQ4_0 ? 4 : 8;  // nibbles / qs + 128
}

}  // namespace

void RepackGgmlBlockPanelReference(const GgmlBlockWeights& w, int64_t r0, Int8PanelBuffers* buffers,
                                   Int8Panel* panel) {
  SetUpPanel(w, r0, buffers, panel);
  const int64_t nb = w.blocks_per_row();
  uint8_t* codes = buffers->codes();
  float* scales = buffers->scales();
  std::memset(codes, 0, static_cast<size_t>(nb * kPanelChunkBytes));
  std::fill(scales, scales + nb * kPanelRows, 0.0f);
  const int32_t zo = panel->zo_const;
  for (int64_t l = 0; l < panel->rows; ++l) {
    for (int64_t b = 0; b < nb; ++b) {
      scales[b * kPanelRows + l] = GgmlBlockScale(w, r0 + l, b);
      for (int64_t c = 0; c < kGgmlBlockCols; ++c) {
        const int64_t j = c / 4, t = c % 4;
        codes[((b * kPanelQuads + j) * kPanelRows + l) * 4 + t] =
            static_cast<uint8_t>(GgmlBlockCode(w, r0 + l, b * kGgmlBlockCols + c) + zo);
      }
    }
  }
}

void RepackGgmlBlockPanel(const GgmlBlockWeights& w, int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel) {
  const KernelIsa isa = ActiveIsa();
  if (isa == KernelIsa::kReference) {
    RepackGgmlBlockPanelReference(w, r0, buffers, panel);
    return;
  }
  SetUpPanel(w, r0, buffers, panel);
  auto* repack = isa == KernelIsa::kAvx512 ? internal::GgmlBlockRepackPanelAvx512 : internal::GgmlBlockRepackPanelAvx2;
  repack(w.kind == GgmlBlockKind::kQ4_0, w.data + r0 * w.RowBytes(), w.RowBytes(), w.blocks_per_row(),
         static_cast<int>(panel->rows), buffers->codes(), buffers->scales());
}

namespace internal {

void GgmlBlockGemmQ8Panels(const GgmlBlockWeights& w, const Q8_0Activations& a, const float* bias, float* y,
                           ThreadPool& pool) {
  const int64_t nb = w.blocks_per_row();
  const int32_t zo = w.kind == GgmlBlockKind::kQ4_0 ? 8 : 128;
  // -zo * block_sum once per token and block (the core's optional hint).
  std::vector<int32_t> nzq(a.block_sums.size());
  for (size_t k = 0; k < nzq.size(); ++k) nzq[k] = -zo * a.block_sums[k];
  Int8PanelActivations x;
  x.n = a.n;
  x.qa = a.qa.data();
  x.qa_stride = w.cols;
  x.a = a.da.data();
  x.qsum = a.block_sums.data();
  x.group_stride = nb;
  x.nzq = nzq.data();
  x.nzq_for = zo;
  Int8PanelGemmRun(w.rows, x, bias, y, w.rows, pool,
                   [&w](int64_t r0, Int8PanelBuffers* buffers, Int8Panel* panel) {
                     RepackGgmlBlockPanel(w, r0, buffers, panel);
                   });
}

}  // namespace internal
}  // namespace squeeze::kernels
