#include "workers/runner/quant_module_report.h"

#include "workers/methods/quant/rtn.h"

namespace squeeze {

ModuleReport InstallQuantized(const std::string& modifier, const std::string& module, const MatrixRM& w,
                              const MatrixRM& w_hat, std::unique_ptr<LinearLayer> quantized,
                              std::unique_ptr<LinearLayer>& slot) {
  ModuleReport r;
  r.module = module;
  r.modifier = modifier;
  r.metrics["rel_error"] = RelativeError(w, w_hat);
  r.metrics["max_abs_error"] = static_cast<double>((w - w_hat).cwiseAbs().maxCoeff());
  r.metrics["bytes_before"] = static_cast<double>(slot->StorageBytes());
  r.metrics["sparsity"] = static_cast<double>((w_hat.array() == 0.0f).count()) / static_cast<double>(w_hat.size());
  slot = std::move(quantized);
  r.kind = slot->kind();
  r.metrics["bytes_after"] = static_cast<double>(slot->StorageBytes());
  r.metrics["bits"] = 8.0 * static_cast<double>(slot->StorageBytes()) / static_cast<double>(w.size());
  return r;
}

}  // namespace squeeze
