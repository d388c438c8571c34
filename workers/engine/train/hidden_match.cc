#include "workers/engine/train/hidden_match.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/model/forward.h"

namespace squeeze::train {

absl::StatusOr<double> HiddenStateMse(const MatrixRM& hs, const MatrixRM& ht, const MatrixRM* proj, double weight,
                                      MatrixRM* dhs, MatrixRM* dproj) {
  const int64_t n = hs.rows(), ds = hs.cols(), dt = ht.cols();
  if (ht.rows() != n) {
    return absl::InvalidArgumentError(absl::StrCat("hidden-state match: teacher rows ", ht.rows(), " != student rows ", n));
  }
  if (proj == nullptr && ds != dt) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden-state match: widths differ (student ", ds, ", teacher ", dt, ") and no projection"));
  }
  if (proj != nullptr && (proj->rows() != dt || proj->cols() != ds)) {
    return absl::InvalidArgumentError(absl::StrCat("hidden-state match: projection is [", proj->rows(), ", ",
                                                   proj->cols(), "], expected [", dt, ", ", ds, "]"));
  }
  if (dhs != nullptr && (dhs->rows() != n || dhs->cols() != ds)) {
    return absl::InvalidArgumentError("hidden-state match: dhs must be shaped like the student states");
  }
  if (dproj != nullptr && (proj == nullptr || dproj->rows() != dt || dproj->cols() != ds)) {
    return absl::InvalidArgumentError("hidden-state match: dproj must be shaped like the projection");
  }
  if (n == 0) return 0.0;
  const double scale = weight / (static_cast<double>(n) * static_cast<double>(dt));
  double sum = 0;
  std::vector<double> r(dt);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t a = 0; a < dt; ++a) {
      double p = 0;
      if (proj != nullptr) {
        for (int64_t b = 0; b < ds; ++b) p += static_cast<double>((*proj)(a, b)) * hs(i, b);
      } else {
        p = hs(i, a);
      }
      r[a] = p - ht(i, a);
      sum += r[a] * r[a];
    }
    if (dhs != nullptr) {
      for (int64_t b = 0; b < ds; ++b) {
        double g = 0;
        if (proj != nullptr) {
          for (int64_t a = 0; a < dt; ++a) g += r[a] * (*proj)(a, b);
        } else {
          g = r[b];
        }
        (*dhs)(i, b) += static_cast<float>(2 * scale * g);
      }
    }
    if (dproj != nullptr) {
      for (int64_t a = 0; a < dt; ++a) {
        for (int64_t b = 0; b < ds; ++b) (*dproj)(a, b) += static_cast<float>(2 * scale * r[a] * hs(i, b));
      }
    }
  }
  return scale * sum;
}

absl::StatusOr<std::vector<MatrixRM>> TeacherHiddenStates(const Model& teacher, const std::vector<int>& tokens,
                                                          int batch, int seq, const std::vector<int>& layers,
                                                          ThreadPool& pool) {
  const int n_layers = static_cast<int>(teacher.blocks.size());
  if (static_cast<int64_t>(tokens.size()) != int64_t{batch} * seq) {
    return absl::InvalidArgumentError("teacher hidden states: tokens != batch * seq");
  }
  int last = -1;
  for (int l : layers) {
    if (l < 0 || l >= n_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("teacher hidden states: layer ", l, " is outside the teacher's [0, ", n_layers, ")"));
    }
    last = std::max(last, l);
  }
  std::vector<MatrixRM> out(layers.size(), MatrixRM(int64_t{batch} * seq, teacher.config.dim));
  for (int r = 0; r < batch; ++r) {
    MatrixRM h;
    SQ_RETURN_IF_ERROR(Embed(teacher, absl::MakeConstSpan(tokens.data() + int64_t{r} * seq, seq), h));
    for (int l = 0; l <= last; ++l) {
      SQ_RETURN_IF_ERROR(RunBlock(teacher, l, h, 0, nullptr, nullptr, pool));
      for (size_t k = 0; k < layers.size(); ++k) {
        if (layers[k] == l) out[k].middleRows(int64_t{r} * seq, seq) = h;
      }
    }
  }
  return out;
}

int DefaultTeacherLayer(int student_layer, int n_student, int n_teacher) {
  if (n_student == n_teacher) return student_layer;
  const double t = std::round(static_cast<double>(student_layer + 1) * n_teacher / n_student) - 1;
  return std::max(0, std::min(n_teacher - 1, static_cast<int>(t)));
}

}  // namespace squeeze::train
