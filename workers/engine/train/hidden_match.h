// Hidden-state matching for distillation (TinyBERT / MiniLM-style "optional
// hidden-state matching on chosen layers" of issue #6): the student's block
// outputs are pulled towards the teacher's with a mean squared error, through
// a learned linear projection when the widths differ.
//
//   loss = weight / (N * d_t) * sum_i || P hs_i - ht_i ||^2
//
// hs [N, d_s] student block output, ht [N, d_t] teacher block output, P
// [d_t, d_s] (P = identity when proj is null, which needs d_s == d_t).
// Gradients (ADDED into the outputs):
//   dhs += 2 w / (N d_t) (P hs_i - ht_i)^T P        [N, d_s]
//   dP  += 2 w / (N d_t) sum_i (P hs_i - ht_i) hs_i^T   [d_t, d_s]
// Deterministic: plain loops in row order, no threading.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/model/model.h"

namespace squeeze::train {

// InvalidArgument on mismatched shapes (names the operand).
absl::StatusOr<double> HiddenStateMse(const MatrixRM& hs, const MatrixRM& ht, const MatrixRM* proj, double weight,
                                      MatrixRM* dhs, MatrixRM* dproj);

// The teacher's block outputs (after block l, before the final norm) for the
// requested layers, on `batch` rows of `seq` tokens (row r holds tokens
// [r*seq, (r+1)*seq)): out[k] is [batch*seq, dim] for layers[k]. Runs the
// inference blocks (RunBlock) without a cache, one row at a time.
absl::StatusOr<std::vector<MatrixRM>> TeacherHiddenStates(const Model& teacher, const std::vector<int>& tokens,
                                                          int batch, int seq, const std::vector<int>& layers,
                                                          ThreadPool& pool);

// Which teacher layer each student layer is matched to when none is given:
// the same index when the depths are equal, else the proportional one,
// round((l + 1) * n_teacher / n_student) - 1 (the last student layer meets the
// last teacher layer).
int DefaultTeacherLayer(int student_layer, int n_student, int n_teacher);

}  // namespace squeeze::train
