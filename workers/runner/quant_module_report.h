// The per-module step every weight-quantization modifier ends with: install
// the quantized layer and report the figures they all give.
#pragma once

#include <memory>
#include <string>

#include "workers/engine/core/tensor.h"
#include "workers/engine/model/linear.h"
#include "workers/runner/modifier.h"

namespace squeeze {

// Replaces `slot` (whose dense weight was `w`) with `quantized` (whose dense
// weight is `w_hat`) and returns the report: rel_error (||W - W_hat||_F /
// ||W||_F), max_abs_error, sparsity (fraction of zero weights in W_hat),
// bytes_before / bytes_after (storage of the old / new layer), bits (8 *
// bytes_after per weight, scales included) and the new layer's kind.
ModuleReport InstallQuantized(const std::string& modifier, const std::string& module, const MatrixRM& w,
                              const MatrixRM& w_hat, std::unique_ptr<LinearLayer> quantized,
                              std::unique_ptr<LinearLayer>& slot);

}  // namespace squeeze
