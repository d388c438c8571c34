#include "workers/engine/formats/llama2c.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/unit/formats/test_util.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/dense_linear.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::FreshTestDir;
using testing_util::RandomFloats;

// ---- A reference for the permutation: torch's
//   w.view(n_heads, head_dim // 2, 2, cols).transpose(1, 2).reshape(n_heads * head_dim, cols)
// spelled out as index arithmetic on the 4-D view: the result, viewed as
// [n_heads, 2, head_dim/2, cols], has element [h][j][i][c] = w[h][i][j][c].
std::vector<float> TorchPermute(const std::vector<float>& w, int64_t n_heads, int64_t head_dim,
                                int64_t cols) {
  const int64_t half = head_dim / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t c = 0; c < cols; ++c)
          out[((h * 2 + j) * half + i) * cols + c] = w[((h * half + i) * 2 + j) * cols + c];
  return out;
}

TEST(Llama2cTest, PermutationMatchesTorchReference) {
  const int64_t heads = 3, hd = 8, cols = 5;
  const std::vector<float> w = RandomFloats(heads * hd * cols, 11);
  std::vector<float> got(w.size());
  PermuteInterleavedToHalfSplit(w.data(), got.data(), heads, hd, cols);
  EXPECT_EQ(got, TorchPermute(w, heads, hd, cols));
}

// The permutation is what makes the two RoPE conventions agree: the attention
// score q(m)·k(n) of one head, with llama2.c's interleaved rotation on the
// original rows, equals HF's half-split rotation on the permuted rows.
TEST(Llama2cTest, PermutationMakesRopeConventionsAgree) {
  const int64_t hd = 8, dim = 12;
  const std::vector<float> wq = RandomFloats(hd * dim, 21), wk = RandomFloats(hd * dim, 22);
  const std::vector<float> x1 = RandomFloats(dim, 23), x2 = RandomFloats(dim, 24);
  auto matvec = [&](const std::vector<float>& w, const std::vector<float>& x) {
    std::vector<double> y(hd, 0.0);
    for (int64_t r = 0; r < hd; ++r)
      for (int64_t c = 0; c < dim; ++c) y[r] += double(w[r * dim + c]) * x[c];
    return y;
  };
  auto freq = [&](int64_t i, int pos) { return pos * std::pow(10000.0, -2.0 * i / hd); };
  auto rope_interleaved = [&](std::vector<double> v, int pos) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double a = v[2 * i], b = v[2 * i + 1], f = freq(i, pos);
      v[2 * i] = a * std::cos(f) - b * std::sin(f);
      v[2 * i + 1] = a * std::sin(f) + b * std::cos(f);
    }
    return v;
  };
  auto rope_half = [&](std::vector<double> v, int pos) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double a = v[i], b = v[i + hd / 2], f = freq(i, pos);
      v[i] = a * std::cos(f) - b * std::sin(f);
      v[i + hd / 2] = a * std::sin(f) + b * std::cos(f);
    }
    return v;
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  std::vector<float> pq(wq.size()), pk(wk.size());
  PermuteInterleavedToHalfSplit(wq.data(), pq.data(), 1, hd, dim);
  PermuteInterleavedToHalfSplit(wk.data(), pk.data(), 1, hd, dim);
  for (auto [m, n] : {std::pair{0, 0}, {5, 2}, {17, 3}, {100, 99}}) {
    const double llama2c = dot(rope_interleaved(matvec(wq, x1), m), rope_interleaved(matvec(wk, x2), n));
    const double hf = dot(rope_half(matvec(pq, x1), m), rope_half(matvec(pk, x2), n));
    EXPECT_NEAR(llama2c, hf, 1e-9 * (1 + std::abs(llama2c))) << m << "," << n;
  }
  // Without the permutation the conventions disagree (the test can fail).
  const double wrong = dot(rope_half(matvec(wq, x1), 5), rope_half(matvec(wk, x2), 2));
  const double right = dot(rope_interleaved(matvec(wq, x1), 5), rope_interleaved(matvec(wk, x2), 2));
  EXPECT_GT(std::abs(wrong - right), 1e-3);
}

// ---- Synthetic llama2.c files.

struct Llama2cSpec {
  int32_t dim = 16, hidden = 24, layers = 2, heads = 4, kv_heads = 2, vocab = 20, seq_len = 8;
  bool shared = true;
};

struct Llama2cParts {
  std::vector<float> emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq, wcls;
};

std::string WriteLlama2c(const std::string& path, const Llama2cSpec& s, Llama2cParts* parts) {
  const int64_t kv_dim = s.dim / s.heads * s.kv_heads, hd = s.dim / s.heads, L = s.layers;
  uint32_t seed = 100;
  parts->emb = RandomFloats(s.vocab * s.dim, seed++);
  parts->rms_att = RandomFloats(L * s.dim, seed++);
  parts->wq = RandomFloats(L * s.dim * s.dim, seed++);
  parts->wk = RandomFloats(L * kv_dim * s.dim, seed++);
  parts->wv = RandomFloats(L * kv_dim * s.dim, seed++);
  parts->wo = RandomFloats(L * s.dim * s.dim, seed++);
  parts->rms_ffn = RandomFloats(L * s.dim, seed++);
  parts->w1 = RandomFloats(L * s.hidden * s.dim, seed++);
  parts->w2 = RandomFloats(L * s.dim * s.hidden, seed++);
  parts->w3 = RandomFloats(L * s.hidden * s.dim, seed++);
  parts->rms_final = RandomFloats(s.dim, seed++);
  parts->freq = RandomFloats(s.seq_len * hd, seed++);  // real and imag halves
  if (!s.shared) parts->wcls = RandomFloats(s.vocab * s.dim, seed++);
  std::string bytes;
  const int32_t hdr[7] = {s.dim,    s.hidden, s.layers, s.heads, s.kv_heads, s.shared ? s.vocab : -s.vocab,
                          s.seq_len};
  bytes.append(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  for (const auto* v :
       {&parts->emb, &parts->rms_att, &parts->wq, &parts->wk, &parts->wv, &parts->wo, &parts->rms_ffn,
        &parts->w1, &parts->w2, &parts->w3, &parts->rms_final, &parts->freq, &parts->wcls}) {
    bytes.append(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float));
  }
  testing_util::WriteBytes(path, bytes);
  return bytes;
}

std::vector<float> Slice(const std::vector<float>& v, int64_t offset, int64_t n) {
  return std::vector<float>(v.begin() + offset, v.begin() + offset + n);
}

std::vector<float> Flat(const MatrixRM& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

TEST(Llama2cTest, LoadsUntiedSyntheticCheckpoint) {
  const std::string path = FreshTestDir() + "/untied.bin";
  Llama2cSpec s;
  s.shared = false;
  Llama2cParts p;
  WriteLlama2c(path, s, &p);
  auto m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.dim, 16);
  EXPECT_EQ(c.hidden_dim, 24);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 4);
  EXPECT_EQ(c.vocab_size, 20);
  EXPECT_EQ(c.max_seq_len, 8);
  EXPECT_FALSE(c.tie_word_embeddings);
  ASSERT_NE(m->lm_head, nullptr);
  EXPECT_EQ(Flat(m->lm_head->DenseWeight()), p.wcls);
  EXPECT_EQ(Flat(m->embedding), p.emb);
  EXPECT_EQ(m->final_norm, p.rms_final);
  const int64_t d = 16, kv = 8, h = 24;
  for (int l = 0; l < 2; ++l) {
    SCOPED_TRACE(l);
    const TransformerBlock& b = m->blocks[l];
    EXPECT_EQ(b.attn_norm, Slice(p.rms_att, l * d, d));
    EXPECT_EQ(b.ffn_norm, Slice(p.rms_ffn, l * d, d));
    EXPECT_EQ(Flat(b.q_proj->DenseWeight()), TorchPermute(Slice(p.wq, l * d * d, d * d), 4, 4, d));
    EXPECT_EQ(Flat(b.k_proj->DenseWeight()), TorchPermute(Slice(p.wk, l * kv * d, kv * d), 2, 4, d));
    EXPECT_EQ(Flat(b.v_proj->DenseWeight()), Slice(p.wv, l * kv * d, kv * d));
    EXPECT_EQ(Flat(b.o_proj->DenseWeight()), Slice(p.wo, l * d * d, d * d));
    EXPECT_EQ(Flat(b.gate_proj->DenseWeight()), Slice(p.w1, l * h * d, h * d));
    EXPECT_EQ(Flat(b.down_proj->DenseWeight()), Slice(p.w2, l * d * h, d * h));
    EXPECT_EQ(Flat(b.up_proj->DenseWeight()), Slice(p.w3, l * h * d, h * d));
    EXPECT_EQ(b.k_proj->out_features(), 8);
    EXPECT_EQ(b.gate_proj->out_features(), 24);
  }
}

TEST(Llama2cTest, SizeMismatchesAndBadHeaders) {
  const std::string dir = FreshTestDir();
  Llama2cSpec s;
  Llama2cParts p;
  const std::string bytes = WriteLlama2c(dir + "/ok.bin", s, &p);
  ASSERT_TRUE(LoadModel(dir + "/ok.bin").ok());

  testing_util::WriteBytes(dir + "/short.bin", bytes.substr(0, bytes.size() - 10));
  auto st = LoadModel(dir + "/short.bin").status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(),
              AllOf(HasSubstr("short.bin"), HasSubstr(absl::StrCat("file is ", bytes.size() - 10, " bytes")),
                    HasSubstr(absl::StrCat("implies ", bytes.size(), " bytes (truncated)"))));

  testing_util::WriteBytes(dir + "/long.bin", bytes + "xyzw");
  EXPECT_THAT(LoadModel(dir + "/long.bin").status().message(), HasSubstr("(trailing data)"));

  testing_util::WriteBytes(dir + "/tiny.bin", bytes.substr(0, 10));
  EXPECT_THAT(LoadModel(dir + "/tiny.bin").status().message(), HasSubstr("too short for the 28-byte header"));

  std::string zero = bytes;
  std::memset(&zero[8], 0, 4);  // n_layers = 0
  testing_util::WriteBytes(dir + "/zero.bin", zero);
  EXPECT_THAT(LoadModel(dir + "/zero.bin").status().message(), HasSubstr("n_layers = 0 is out of range"));

  std::string odd = bytes;
  const int32_t five = 5;
  std::memcpy(&odd[12], &five, 4);  // n_heads = 5 does not divide dim 16
  testing_util::WriteBytes(dir + "/odd.bin", odd);
  EXPECT_THAT(LoadModel(dir + "/odd.bin").status().message(), HasSubstr("inconsistent header"));

  std::string text(100, 'x');  // e.g. a text file passed by mistake
  testing_util::WriteBytes(dir + "/text.bin", text);
  EXPECT_THAT(LoadModel(dir + "/text.bin").status().message(), HasSubstr("out of range"));
}

// ---- The real stories260K model in both forms.

std::string Stories() { return std::string(SQUEEZE_SHARED_DIR) + "/models/stories260K"; }

class Stories260KTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(Stories() + "/stories260K.bin") || !fs::exists(Stories() + "/hf/model.safetensors")) {
      GTEST_SKIP() << "stories260K not found under " << Stories() << " (needs ../shared)";
    }
  }
};

double MaxAbsDiff(const MatrixRM& a, const MatrixRM& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return INFINITY;
  return (a - b).cwiseAbs().maxCoeff();
}
double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

TEST_F(Stories260KTest, BothFormsLoadAndAgreeWeightForWeight) {
  auto bin = LoadModel(Stories() + "/stories260K.bin");
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto hf = LoadModel(Stories() + "/hf");
  ASSERT_TRUE(hf.ok()) << hf.status();

  for (const ModelConfig* c : {&bin->config, &hf->config}) {
    EXPECT_EQ(c->architecture, "LlamaForCausalLM");
    EXPECT_EQ(c->dim, 64);
    EXPECT_EQ(c->hidden_dim, 172);
    EXPECT_EQ(c->n_layers, 5);
    EXPECT_EQ(c->n_heads, 8);
    EXPECT_EQ(c->n_kv_heads, 4);
    EXPECT_EQ(c->head_dim, 8);
    EXPECT_EQ(c->vocab_size, 512);
    EXPECT_EQ(c->max_seq_len, 512);
    EXPECT_TRUE(c->tie_word_embeddings);
    EXPECT_EQ(c->rope_theta, 10000.0f);
    EXPECT_EQ(c->norm_eps, 1e-5f);
    EXPECT_EQ(c->bos_token_id, 1);
    EXPECT_EQ(c->eos_token_id, 2);
  }
  EXPECT_EQ(bin->lm_head, nullptr);
  EXPECT_EQ(hf->lm_head, nullptr);

  // Every weight of the llama2.c form (q/k permuted on load) equals the HF form.
  double worst = MaxAbsDiff(bin->embedding, hf->embedding);
  worst = std::max(worst, MaxAbsDiff(bin->final_norm, hf->final_norm));
  int64_t params = bin->embedding.size() + static_cast<int64_t>(bin->final_norm.size());
  for (int l = 0; l < 5; ++l) {
    worst = std::max(worst, MaxAbsDiff(bin->blocks[l].attn_norm, hf->blocks[l].attn_norm));
    worst = std::max(worst, MaxAbsDiff(bin->blocks[l].ffn_norm, hf->blocks[l].ffn_norm));
    params += 2 * 64;
  }
  auto a = bin->AllLinears(), b = hf->AllLinears();
  ASSERT_EQ(a.size(), 35u);
  ASSERT_EQ(b.size(), 35u);
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(a[i].name);
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ((*a[i].slot)->kind(), "dense_f32");
    const double d = MaxAbsDiff((*a[i].slot)->DenseWeight(), (*b[i].slot)->DenseWeight());
    EXPECT_LE(d, 1e-6);
    worst = std::max(worst, d);
    params += (*a[i].slot)->in_features() * (*a[i].slot)->out_features();
  }
  EXPECT_LE(worst, 1e-6);
  std::printf("stories260K: max |llama2.c (permuted) - HF| over %lld weights: %g\n",
              static_cast<long long>(params), worst);
  EXPECT_EQ(params, 260032);  // README: 260,032 parameters

  // The check is sensitive to the permutation: layer 0's wq rows as stored in
  // the .bin (interleaved layout) differ from HF's; permuted, they are what we load.
  const MatrixRM loaded_q = bin->blocks[0].q_proj->DenseWeight();
  std::vector<float> unpermuted(loaded_q.size());
  auto file = testing_util::ReadBytes(Stories() + "/stories260K.bin");
  const size_t wq_offset = 28 + 4 * (512 * 64 + 5 * 64);
  std::memcpy(unpermuted.data(), file.data() + wq_offset, unpermuted.size() * 4);
  EXPECT_GT(MaxAbsDiff(unpermuted, Flat(hf->blocks[0].q_proj->DenseWeight())), 1e-3);
  EXPECT_EQ(Flat(loaded_q), TorchPermute(unpermuted, 8, 8, 64));
}

// The file mapped at `address` in this process, from /proc/self/maps ("" if none).
std::string MappedFileAt(const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(address);
  while (std::getline(maps, line)) {
    unsigned long long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &lo, &hi) != 2 || a < lo || a >= hi) continue;
    const size_t slash = line.find('/');
    return slash == std::string::npos ? std::string() : line.substr(slash);
  }
  return "";
}

TEST_F(Stories260KTest, F32WeightsAreZeroCopyFromTheMapping) {
  auto bin = LoadModel(Stories() + "/stories260K.bin");
  ASSERT_TRUE(bin.ok()) << bin.status();
  auto hf = LoadModel(Stories() + "/hf");
  ASSERT_TRUE(hf.ok()) << hf.status();
  if (!std::ifstream("/proc/self/maps")) GTEST_SKIP() << "/proc/self/maps is not readable";
  auto weight_ptr = [](const LinearLayer& l) {
    const auto* dense = dynamic_cast<const DenseLinear*>(&l);
    return dense ? dense->weight_view().data : nullptr;
  };
  // HF: every linear points into model.safetensors.
  for (const LinearSlot& s : hf->AllLinears()) {
    EXPECT_THAT(MappedFileAt(weight_ptr(**s.slot)), ::testing::EndsWith("/hf/model.safetensors")) << s.name;
  }
  // llama2.c: v/o/gate/up/down point into the .bin; q/k are permuted copies.
  const TransformerBlock& b = bin->blocks[2];
  for (const LinearLayer* l :
       {b.v_proj.get(), b.o_proj.get(), b.gate_proj.get(), b.up_proj.get(), b.down_proj.get()}) {
    EXPECT_THAT(MappedFileAt(weight_ptr(*l)), ::testing::EndsWith("/stories260K.bin"));
  }
  EXPECT_EQ(MappedFileAt(weight_ptr(*b.q_proj)), "");
  // The embedding is an fp32 copy owned by the Model.
  EXPECT_EQ(MappedFileAt(bin->embedding.data()), "");
}

TEST_F(Stories260KTest, SaveAsHfReloadsIdentically) {
  auto bin = LoadModel(Stories() + "/stories260K.bin");
  ASSERT_TRUE(bin.ok()) << bin.status();
  const std::string dir = FreshTestDir() + "/hf";
  ASSERT_TRUE(SaveModel(*bin, dir).ok());
  auto back = LoadModel(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  auto hf = LoadModel(Stories() + "/hf");
  ASSERT_TRUE(hf.ok());
  EXPECT_EQ(MaxAbsDiff(back->embedding, hf->embedding), 0.0);
  auto a = back->AllLinears(), b = hf->AllLinears();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(MaxAbsDiff((*a[i].slot)->DenseWeight(), (*b[i].slot)->DenseWeight()), 0.0) << a[i].name;
  }
}

TEST_F(Stories260KTest, TruncatedCopyGivesClearError) {
  const std::string bytes = testing_util::ReadBytes(Stories() + "/stories260K.bin");
  ASSERT_EQ(bytes.size(), 1056540u);
  const std::string path = FreshTestDir() + "/stories260K_truncated.bin";
  testing_util::WriteBytes(path, bytes.substr(0, 600000));
  auto st = LoadModel(path).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), AllOf(HasSubstr("stories260K_truncated.bin"), HasSubstr("file is 600000 bytes"),
                                  HasSubstr("implies 1056540 bytes (truncated)")));
}

}  // namespace
}  // namespace squeeze
