#include "workers/methods/quant/ggml_block_linear.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/half.h"
#include "workers/methods/stored_tensors.h"

namespace squeeze {

using kernels::GgmlBlockKind;

namespace {

// A Q4_0 block: fp16 d (little-endian), then 16 bytes whose low nibbles are
// columns 0..15 and high nibbles columns 16..31 (q8_0_gemm.h). The packed
// layout's row byte k holds column 2k (low nibble) and 2k + 1 (high): for
// block b, bytes 16b + t, t < 8, are columns 2t, 2t + 1 (low nibbles of
// qs[2t], qs[2t + 1]); t >= 8 columns 2t, 2t + 1 >= 16 (high nibbles of
// qs[2t - 16], qs[2t - 15]).
inline uint16_t BlockScaleBits(const uint8_t* blk) { return static_cast<uint16_t>(blk[0] | (blk[1] << 8)); }

void BlockToPacked(const uint8_t* qs, uint8_t* dst) {
  for (int t = 0; t < 8; ++t) {
    dst[t] = static_cast<uint8_t>((qs[2 * t] & 0xF) | ((qs[2 * t + 1] & 0xF) << 4));
    dst[t + 8] = static_cast<uint8_t>((qs[2 * t] >> 4) | (qs[2 * t + 1] & 0xF0));
  }
}

void PackedToBlock(const uint8_t* src, uint8_t* qs) {
  for (int t = 0; t < 8; ++t) {
    qs[2 * t] = static_cast<uint8_t>((src[t] & 0xF) | ((src[t + 8] & 0xF) << 4));
    qs[2 * t + 1] = static_cast<uint8_t>((src[t] >> 4) | (src[t + 8] & 0xF0));
  }
}

// Blocks the packed-int path can hold: in within its int32 bound and every
// scale exactly recoverable (fp16 -> fp32 -> fp16 is the identity for every
// finite value and infinities; a NaN payload might not survive).
bool Convertible(GgmlBlockKind kind, const uint8_t* bytes, int64_t out, int64_t in) {
  if (in > (int64_t{1} << 16)) return false;
  const int64_t blocks = out * (in / kernels::kGgmlBlockCols), bb = kernels::GgmlBlockBytes(kind);
  for (int64_t k = 0; k < blocks; ++k) {
    const uint16_t h = BlockScaleBits(bytes + k * bb);
    if (FloatToF16(F16ToFloat(h)) != h) return false;
  }
  return true;
}

// Code bits of the packed layout: Q4_0 nibbles u = nibble (q = u - 8),
// Q8_0 bytes u = qs + 128 = qs xor 0x80 (q = u - 128 = qs), natural order.
int CodeBits(GgmlBlockKind kind) { return kind == GgmlBlockKind::kQ4_0 ? 4 : 8; }

// Hints that the source pages of a converted layer are not needed here any
// more, as the conversion goes: MADV_PAGEOUT reclaims pages WITHOUT
// changing their contents (clean file pages are dropped and re-read on a
// later access, anonymous ones swapped if there is swap), so any other user
// still reads the same bytes. On the file mapping a layer's blocks come from
// this (with a destination that is not zero-filled first,
// UninitCacheLineAllocator) keeps load at about one copy of the weights:
// bench_gguf_load's 1-layer Llama-7B-shaped file peaked at 1008 MiB without
// it, 879 MiB with it, 841 MiB when the blocks were kept as they lie in the
// mapping. Errors (a kernel without MADV_PAGEOUT) are ignored: a hint.
class SourcePageReleaser {
 public:
  explicit SourcePageReleaser(const uint8_t* begin)
      : page_(static_cast<uintptr_t>(sysconf(_SC_PAGESIZE))),
        next_((reinterpret_cast<uintptr_t>(begin) + page_ - 1) / page_ * page_) {}
  // Releases the whole pages below `end` not released yet.
  void ReleaseBelow(const uint8_t* end) {
    const uintptr_t e = reinterpret_cast<uintptr_t>(end) / page_ * page_;
    if (e <= next_) return;
#ifdef MADV_PAGEOUT
    (void)madvise(reinterpret_cast<void*>(next_), e - next_, MADV_PAGEOUT);
#endif
    next_ = e;
  }

 private:
  uintptr_t page_, next_;
};

// Asks for transparent huge pages on the whole 2 MiB pages inside [p, p + n)
// before they are first written (a hint, for the "madvise" THP mode): far
// fewer page faults when a converted layer is written at load, and fewer
// TLB misses in decode. Measured (bench_gguf_load direct, 1-layer Llama-7B
// shapes; llamacpp_bench_models layers, Q4_0, 1 thread): load 3.6-4.0 ->
// 3.3-3.4 s, decode linears 4-8% faster.
void AdviseHugePages(void* p, size_t n) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = reinterpret_cast<uintptr_t>(p);
  const uintptr_t b = (begin + kHuge - 1) / kHuge * kHuge, e = (begin + n) / kHuge * kHuge;
  if (e > b) (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

// Blocks converted between two page release hints (on a mapped source).
constexpr int64_t kReleaseEveryBlocks = int64_t{1} << 16;

}  // namespace

void GgmlBlockLinear::SetWeights(const uint8_t* bytes, int64_t num_bytes, std::shared_ptr<const void> owner) {
  num_bytes_ = num_bytes;
  if (Convertible(kind_, bytes, out_, in_)) {
    const int64_t nb = in_ / kernels::kGgmlBlockCols, bb = kernels::GgmlBlockBytes(kind_);
    const int64_t code_bytes = kernels::kGgmlBlockCols * CodeBits(kind_) / 8;  // per block: 16 or 32
    packed_.resize(static_cast<size_t>(out_ * nb * code_bytes / 4));
    scales_.resize(static_cast<size_t>(out_ * nb));
    auto* dst = reinterpret_cast<uint8_t*>(packed_.data());
    AdviseHugePages(packed_.data(), packed_.size() * sizeof(uint32_t));
    AdviseHugePages(scales_.data(), scales_.size() * sizeof(float));
    SourcePageReleaser releaser(bytes);
    for (int64_t k = 0; k < out_ * nb; ++k) {  // block k = row k / nb, block k % nb, on both sides
      const uint8_t* blk = bytes + k * bb;
      if (owner != nullptr && k % kReleaseEveryBlocks == 0) releaser.ReleaseBelow(blk);  // shared (mapped) blocks
      scales_[k] = F16ToFloat(BlockScaleBits(blk));
      uint8_t* codes = dst + k * code_bytes;
      if (kind_ == GgmlBlockKind::kQ4_0) {
        BlockToPacked(blk + 2, codes);
      } else {
        for (int64_t c = 0; c < code_bytes; ++c) codes[c] = static_cast<uint8_t>(blk[2 + c] ^ 0x80);
      }
    }
    if (owner != nullptr) releaser.ReleaseBelow(bytes + num_bytes);  // copies die with the caller instead
    return;
  }
  if (owner != nullptr) {
    blocks_ = bytes;
    owner_ = std::move(owner);
    return;
  }
  auto copy = std::make_shared<std::vector<uint8_t>>(bytes, bytes + num_bytes);
  blocks_ = copy->data();
  owner_ = std::move(copy);
}

std::shared_ptr<const std::vector<uint8_t>> GgmlBlockLinear::RebuildBlocks() const {
  auto bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(num_bytes_));
  const int64_t nb = in_ / kernels::kGgmlBlockCols, bb = kernels::GgmlBlockBytes(kind_);
  const int64_t code_bytes = kernels::kGgmlBlockCols * CodeBits(kind_) / 8;
  const auto* src = reinterpret_cast<const uint8_t*>(packed_.data());
  for (int64_t k = 0; k < out_ * nb; ++k) {
    uint8_t* blk = bytes->data() + k * bb;
    const uint16_t h = FloatToF16(scales_[k]);  // exact: scales_[k] came from this fp16 value
    blk[0] = static_cast<uint8_t>(h & 0xFF);
    blk[1] = static_cast<uint8_t>(h >> 8);
    const uint8_t* codes = src + k * code_bytes;
    if (kind_ == GgmlBlockKind::kQ4_0) {
      PackedToBlock(codes, blk + 2);
    } else {
      for (int64_t c = 0; c < code_bytes; ++c) blk[2 + c] = static_cast<uint8_t>(codes[c] ^ 0x80);
    }
  }
  return bytes;
}

GgmlBlockLinear::BlockView GgmlBlockLinear::View() const {
  BlockView v;
  v.kind = kind_;
  v.rows = out_;
  v.cols = in_;
  if (packed()) {
    auto bytes = RebuildBlocks();
    v.data = bytes->data();
    v.owner = std::move(bytes);
  } else {
    v.data = blocks_;
    v.owner = owner_;
  }
  return v;
}

kernels::PackedIntWeights GgmlBlockLinear::PackedView() const {
  kernels::PackedIntWeights w;
  w.num_bits = CodeBits(kind_);
  w.rows = out_;
  w.cols = in_;
  w.words_per_row = in_ * w.num_bits / 32;
  w.packed = packed_.data();
  w.groups_per_row = in_ / kernels::kGgmlBlockCols;
  w.group_size = kernels::kGgmlBlockCols;
  w.scales = scales_.data();
  return w;
}

absl::StatusOr<std::unique_ptr<GgmlBlockLinear>> GgmlBlockLinear::FromBlocks(GgmlBlockKind kind, int64_t out,
                                                                             int64_t in, const uint8_t* bytes,
                                                                             int64_t num_bytes,
                                                                             std::vector<float> bias) {
  if (in <= 0 || in % kernels::kGgmlBlockCols != 0) {
    return absl::InvalidArgumentError(absl::StrCat("in_features ", in, ": must be a positive multiple of 32"));
  }
  if (out <= 0) return absl::InvalidArgumentError(absl::StrCat("out_features ", out, ": must be positive"));
  std::unique_ptr<GgmlBlockLinear> layer(new GgmlBlockLinear(kind, out, in));
  const int64_t want = out * (in / kernels::kGgmlBlockCols) * kernels::GgmlBlockBytes(kind);
  if (num_bytes != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_blocks: ", num_bytes, " bytes, expected ", want, " for [", out, ", ", in, "]"));
  }
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
    return absl::InvalidArgumentError(absl::StrCat("bias: ", bias.size(), " values, expected ", out));
  }
  layer->SetWeights(bytes, num_bytes, nullptr);
  layer->bias_ = std::move(bias);
  layer->shape_[0] = out;
  layer->shape_[1] = in;
  return layer;
}

absl::StatusOr<std::unique_ptr<GgmlBlockLinear>> GgmlBlockLinear::FromStored(
    const std::string& kind, const std::map<std::string, TensorView>& tensors) {
  GgmlBlockKind k;
  if (kind == "gguf_q4_0") {
    k = GgmlBlockKind::kQ4_0;
  } else if (kind == "gguf_q8_0") {
    k = GgmlBlockKind::kQ8_0;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(kind, ": not a ggml block kind (gguf_q4_0, gguf_q8_0)"));
  }
  std::vector<int64_t> shape;
  if (absl::Status s = CopyStoredTensor(kind, tensors, "weight_shape", DType::kI64, {2}, &shape); !s.ok()) return s;
  const int64_t out = shape[0], in = shape[1];
  if (out <= 0 || in <= 0 || in % kernels::kGgmlBlockCols != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, ".weight_shape: [", out, ", ", in, "] (in must be a positive multiple of 32)"));
  }
  const int64_t row_bytes = in / kernels::kGgmlBlockCols * kernels::GgmlBlockBytes(k);
  std::vector<float> bias;
  if (tensors.count("bias")) {
    if (absl::Status s = CopyStoredTensor(kind, tensors, "bias", DType::kF32, {out}, &bias); !s.ok()) return s;
  }
  auto it = tensors.find("weight_blocks");
  if (it != tensors.end() && it->second.owner != nullptr) {
    // Shared, not copied: the same checks CopyStoredTensor makes.
    const TensorView& t = it->second;
    const std::vector<int64_t> want = {out, row_bytes};
    if (t.dtype != DType::kU8 || t.shape != want || t.nbytes != static_cast<size_t>(out * row_bytes) ||
        t.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(kind, ".weight_blocks: expected U8 ", ShapeString(want),
                                                     ", got ", DTypeName(t.dtype), " ", ShapeString(t.shape), " (",
                                                     t.nbytes, " bytes)"));
    }
    if (!bias.empty() && static_cast<int64_t>(bias.size()) != out) {
      return absl::InvalidArgumentError(absl::StrCat(kind, ": bias: ", bias.size(), " values, expected ", out));
    }
    std::unique_ptr<GgmlBlockLinear> layer(new GgmlBlockLinear(k, out, in));
    layer->SetWeights(static_cast<const uint8_t*>(t.data), out * row_bytes, t.owner);
    layer->bias_ = std::move(bias);
    layer->shape_[0] = out;
    layer->shape_[1] = in;
    return layer;
  }
  std::vector<uint8_t> blocks;
  if (absl::Status s = CopyStoredTensor(kind, tensors, "weight_blocks", DType::kU8, {out, row_bytes}, &blocks);
      !s.ok()) {
    return s;
  }
  auto layer = FromBlocks(k, out, in, blocks.data(), static_cast<int64_t>(blocks.size()), std::move(bias));
  if (!layer.ok()) return absl::InvalidArgumentError(absl::StrCat(kind, ": ", layer.status().message()));
  return layer;
}

void GgmlBlockLinear::Forward(const float* x, int64_t n_rows, float* y, ThreadPool& pool) const {
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (packed()) {
    // Per calling thread, reused (vectors keep their capacity): a decode
    // step calls this for every layer.
    thread_local kernels::Q8_0Activations a;
    kernels::QuantizeActivationsQ8_0(x, n_rows, in_, &a);
    kernels::PackedIntGemmQ8Quantized(PackedView(), a.qa.data(), a.da.data(), a.block_sums.data(), n_rows, bias, y,
                                      pool);
    return;
  }
  kernels::GgmlBlockGemm(View(), x, n_rows, bias, y, pool);
}

MatrixRM GgmlBlockLinear::DenseWeight() const {
  MatrixRM w(out_, in_);
  if (packed()) {
    // float(u - 8) * fp32(d) (Q8_0: float(qs) * fp32(d)): the product
    // GgmlBlockDequantizeRows forms.
    kernels::PackedIntDequantizeRows(PackedView(), 0, out_, w.data());
  } else {
    kernels::GgmlBlockDequantizeRows(View(), 0, out_, w.data());
  }
  return w;
}

std::string GgmlBlockLinear::kind() const { return kind_ == GgmlBlockKind::kQ4_0 ? "gguf_q4_0" : "gguf_q8_0"; }

int64_t GgmlBlockLinear::StorageBytes() const {
  const int64_t weights = packed() ? static_cast<int64_t>(packed_.size() * sizeof(uint32_t) +
                                                          scales_.size() * sizeof(float))
                                   : num_bytes_;
  return weights + static_cast<int64_t>(bias_.size() * sizeof(float));
}

std::vector<std::pair<std::string, TensorView>> GgmlBlockLinear::StoredTensors() const {
  std::vector<std::pair<std::string, TensorView>> t;
  // A converted layer's blocks are rebuilt here (the original bytes) and
  // live as long as the view.
  BlockView v = View();
  TensorView blocks;
  blocks.dtype = DType::kU8;
  blocks.shape = {out_, v.RowBytes()};
  blocks.data = v.data;
  blocks.nbytes = static_cast<size_t>(num_bytes_);
  blocks.owner = std::move(v.owner);
  t.emplace_back("weight_blocks", std::move(blocks));
  TensorView shape;
  shape.dtype = DType::kI64;
  shape.shape = {2};
  shape.data = shape_;
  shape.nbytes = sizeof(shape_);
  t.emplace_back("weight_shape", shape);
  if (!bias_.empty()) t.emplace_back("bias", VectorView(bias_, DType::kF32, {out_}));
  return t;
}

}  // namespace squeeze
