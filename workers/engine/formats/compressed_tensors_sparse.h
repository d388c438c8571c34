// compressed-tensors sparse formats for pruned linear weights, written from
// neuralmagic/compressed-tensors (compressors/sparse_compressors/
// sparse_bitmask.py, sparse_24_bitmask.py, utils/helpers.py pack_bitmasks,
// config/base.py, compressors/model_compressors/model_compressor.py).
//
// Tensors of module M (the ".weight" suffix dropped, as BaseSparseCompressor
// does); [out, in] is the dense weight W:
//   sparse-bitmask (any zero pattern; BitmaskTensor):
//     M.shape        I64 [2]                 {out, in}
//     M.compressed   dtype [nnz]             W[r, c] != 0 in row-major order
//     M.bitmask      U8  [out, ceil(in / 8)] bit (c % 8) of byte c / 8 of
//                    row r (numpy packbits bitorder "little": least
//                    significant bit first) is 1 iff W[r, c] != 0; padding
//                    bits of a row's last byte are 0
//     M.row_offsets  I64 [out]               index in compressed of row r's
//                    first value (cumsum of row counts minus the row count)
//   sparse-24-bitmask (2:4; Sparse24BitMaskTensor):
//     M.shape        I64 [2, 1]              {out, in} (reshape(-1, 1))
//     M.compressed   dtype [out, in / 2]     the 2 kept values of every group
//                    of 4 consecutive inputs, in input order
//     M.bitmask      U8  [out, ceil(in / 8)] as above; exactly 2 bits per
//                    group of 4
//   Needs in % 4 == 0 and at most 2 non-zeros per group. compressed-tensors
//   picks the kept pair by topk(|w|); where a group has fewer than 2
//   non-zeros the choice among zeros is arbitrary. Ours: the non-zeros, then
//   zeros at the lowest free positions (the engine's sparse_2of4 rule), so an
//   engine 2:4 layer is written as it is stored.
// config.json "quantization_config"."sparsity_config" (SparsityCompressionConfig
// .model_dump()):
//   {"format": "sparse-bitmask" | "sparse-24-bitmask", "targets": [module
//    names], "ignore": [], "global_sparsity": percent of zero parameters in
//    the whole model (llm-compressor's ModuleSparsificationInfo
//    .params_sparse_percent), "sparsity_structure": "2:4" | "unstructured" |
//    "<K>:<M>"}
// A module is either sparse or quantized here, never both: the engine has no
// layer kind that is both (compressed-tensors would stack the compressors).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/core/tensor.h"
#include "workers/engine/formats/checkpoint_tensors.h"
#include "workers/engine/formats/safetensors.h"

namespace squeeze {

inline constexpr char kCtSparseBitmask[] = "sparse-bitmask";
inline constexpr char kCtSparse24Bitmask[] = "sparse-24-bitmask";

// The sparse-bitmask tensors of `w` (values stored as `dtype`).
std::vector<SafetensorsEntry> CtBitmaskEntries(const std::string& module, const MatrixRM& w, DType dtype);

// The sparse-24-bitmask tensors of `w`; InvalidArgument naming the module
// when in % 4 != 0 or a group of 4 holds more than 2 non-zeros (the row and
// the inputs of the first such group).
absl::StatusOr<std::vector<SafetensorsEntry>> CtSparse24Entries(const std::string& module, const MatrixRM& w,
                                                                DType dtype);

// Rewrites module `m`'s shape / compressed / bitmask (/ row_offsets) tensors
// in `ck` as the engine's sparse layer kinds (methods/prune/sparse_linear.h,
// registered by methods/stored_linear.h): a sparse-24-bitmask module whose
// every group of 4 has exactly 2 bits set becomes "sparse_2of4" (values and
// positions as stored); anything else becomes "sparse_bitmask" (the bitmask
// of its non-zero values; stored zeros dropped). Values are widened to fp32.
// Every shape, count and offset is checked; errors name `source` and `m`.
absl::Status CtSparseToCheckpoint(const std::string& m, const std::string& format, const std::string& source,
                                  CheckpointTensors* ck);

}  // namespace squeeze
