// Structured pruning (methods/prune/structured.h), layer removal by block
// influence (methods/prune/layer_removal.h) and StructuredPruningModifier
// through RunRecipe: synthetic math, save -> load -> same logits, and the real
// stories260K model (perplexity and parameter count).
#include "workers/methods/prune/structured.h"

#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/common/run_helpers.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/formats/hf_config.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/prune/layer_removal.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/recipe.h"
#include "workers/runner/stage_runner.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;

ModelConfig SmallConfig() {
  ModelConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 3;
  c.n_heads = 8;
  c.n_kv_heads = 4;  // GQA: groups of 2 query heads
  c.head_dim = 4;
  c.vocab_size = 50;
  c.max_seq_len = 32;
  c.tie_word_embeddings = false;
  return c;
}

MatrixRM RandomHidden(int64_t n, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  MatrixRM h(n, dim);
  for (int64_t i = 0; i < h.size(); ++i) h.data()[i] = d(rng);
  return h;
}

// Collects the input norms of one block's linears while it runs.
class NormObserver final : public BlockObserver {
 public:
  void OnLinearInput(int, BlockLinear which, const float* x, int64_t rows, int64_t cols) override {
    auto& st = stats[static_cast<int>(which)];
    if (!st) st = std::make_unique<ActivationStats>(cols, false);
    st->Add(x, rows);
  }
  BlockInputNorms Norms() const {
    BlockInputNorms n;
    n.attn_in = stats[0]->ChannelNorms();
    n.attn_out = stats[3]->ChannelNorms();
    n.mlp_in = stats[4]->ChannelNorms();
    n.mlp_hidden = stats[6]->ChannelNorms();
    return n;
  }
  std::array<std::unique_ptr<ActivationStats>, kNumBlockLinears> stats;
};

void SetLinear(std::unique_ptr<LinearLayer>& slot, const MatrixRM& w) {
  std::vector<float> bias(slot->bias().begin(), slot->bias().end());
  slot = DenseLinear::FromMatrix(w, std::move(bias));
}

// Zeroes head group g (q/k/v rows and o columns) and MLP channel c of block b.
void ZeroStructures(TransformerBlock& b, int head_dim, int g, int c) {
  const int rep = static_cast<int>(b.q_proj->out_features() / b.k_proj->out_features());
  MatrixRM q = b.q_proj->DenseWeight(), k = b.k_proj->DenseWeight(), v = b.v_proj->DenseWeight(),
           o = b.o_proj->DenseWeight();
  q.middleRows(g * rep * head_dim, rep * head_dim).setZero();
  k.middleRows(g * head_dim, head_dim).setZero();
  v.middleRows(g * head_dim, head_dim).setZero();
  o.middleCols(g * rep * head_dim, rep * head_dim).setZero();
  SetLinear(b.q_proj, q);
  SetLinear(b.k_proj, k);
  SetLinear(b.v_proj, v);
  SetLinear(b.o_proj, o);
  MatrixRM gate = b.gate_proj->DenseWeight(), up = b.up_proj->DenseWeight(), down = b.down_proj->DenseWeight();
  gate.row(c).setZero();
  up.row(c).setZero();
  down.col(c).setZero();
  SetLinear(b.gate_proj, gate);
  SetLinear(b.up_proj, up);
  SetLinear(b.down_proj, down);
}

TEST(Structured, LowestScoredAndCounts) {
  EXPECT_EQ(LowestScored({3.0, 1.0, 2.0, 1.0}, 2), (std::vector<int>{1, 3}));
  EXPECT_EQ(LowestScored({5.0, 5.0, 5.0}, 1), (std::vector<int>{0}));  // ties: lower index
  EXPECT_EQ(LowestScored({1.0, 0.5}, 5), (std::vector<int>{0, 1}));
  EXPECT_EQ(StructuresToRemove(0.2, 172), 34);
  EXPECT_EQ(StructuresToRemove(0.25, 4), 1);
  EXPECT_EQ(StructuresToRemove(0.99, 4), 3);  // at least one kept
  EXPECT_EQ(StructuresToRemove(0.0, 4), 0);
  EXPECT_EQ(StructuresToRemove(0.5, 1), 0);
}

// The scores equal a plain re-statement of their definitions.
TEST(Structured, ScoresMatchDefinitions) {
  Model m = MakeRandomModel(SmallConfig(), 3);
  const TransformerBlock& b = m.blocks[1];
  const int hd = m.config.head_dim;
  NormObserver obs;
  MatrixRM h = RandomHidden(12, m.config.dim, 5);
  ASSERT_TRUE(RunBlock(m, 1, h, 0, nullptr, &obs, ThreadPool::Default()).ok());
  const BlockInputNorms n = obs.Norms();
  auto wanda_sum = [](const MatrixRM& w, const std::vector<double>& s) {
    Eigen::RowVectorXd sv = Eigen::Map<const Eigen::RowVectorXd>(s.data(), static_cast<int64_t>(s.size()));
    return (w.cast<double>().cwiseAbs().array().rowwise() * sv.array()).sum();
  };
  auto heads = HeadGroupImportance(b, hd, StructureImportance::kWanda, n);
  auto heads_out = HeadGroupImportance(b, hd, StructureImportance::kOutput, n);
  auto heads_mag = HeadGroupImportance(b, hd, StructureImportance::kMagnitude, {});
  ASSERT_TRUE(heads.ok() && heads_out.ok() && heads_mag.ok());
  ASSERT_EQ(heads->size(), 4u);
  const MatrixRM q = b.q_proj->DenseWeight(), k = b.k_proj->DenseWeight(), v = b.v_proj->DenseWeight(),
                 o = b.o_proj->DenseWeight();
  for (int g = 0; g < 4; ++g) {
    const int64_t q0 = g * 2 * hd, q1 = (g + 1) * 2 * hd;  // 2 query heads per group
    std::vector<double> ocols(n.attn_out.begin() + q0, n.attn_out.begin() + q1);
    const double want = wanda_sum(q.middleRows(q0, q1 - q0), n.attn_in) +
                        wanda_sum(k.middleRows(g * hd, hd), n.attn_in) +
                        wanda_sum(v.middleRows(g * hd, hd), n.attn_in) + wanda_sum(o.middleCols(q0, q1 - q0), ocols);
    EXPECT_NEAR((*heads)[g], want, 1e-9 * want) << g;
    double want_out = 0.0;
    for (int64_t c = q0; c < q1; ++c) want_out += o.col(c).cast<double>().norm() * n.attn_out[c];
    EXPECT_NEAR((*heads_out)[g], want_out, 1e-9 * want_out) << g;
    const double want_mag = q.middleRows(q0, q1 - q0).cast<double>().cwiseAbs().sum() +
                            k.middleRows(g * hd, hd).cast<double>().cwiseAbs().sum() +
                            v.middleRows(g * hd, hd).cast<double>().cwiseAbs().sum() +
                            o.middleCols(q0, q1 - q0).cast<double>().cwiseAbs().sum();
    EXPECT_NEAR((*heads_mag)[g], want_mag, 1e-9 * want_mag) << g;
  }
  // Wrong norm sizes are an error, not a silent misuse.
  BlockInputNorms bad = n;
  bad.attn_out.pop_back();
  EXPECT_EQ(HeadGroupImportance(b, hd, StructureImportance::kWanda, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// kOutput for one MLP channel is exactly the Frobenius norm of the block
// output change when that channel alone is removed.
TEST(Structured, OutputScoreIsTheOutputChangeOfOneChannel) {
  Model m = MakeRandomModel(SmallConfig(), 4);
  const MatrixRM h0 = RandomHidden(10, m.config.dim, 6);
  NormObserver obs;
  MatrixRM full = h0;
  ASSERT_TRUE(RunBlock(m, 0, full, 0, nullptr, &obs, ThreadPool::Default()).ok());
  auto scores = ChannelImportance(m.blocks[0], StructureImportance::kOutput, obs.Norms());
  ASSERT_TRUE(scores.ok()) << scores.status();
  for (int c : {0, 7, 47}) {
    Model pruned = MakeRandomModel(SmallConfig(), 4);
    ASSERT_TRUE(RemoveChannels(pruned.blocks[0], {c}).ok());
    MatrixRM out = h0;
    ASSERT_TRUE(RunBlock(pruned, 0, out, 0, nullptr, nullptr, ThreadPool::Default()).ok());
    const double change = (full - out).cast<double>().norm();
    EXPECT_NEAR((*scores)[c], change, 1e-4 * change + 1e-6) << c;
  }
}

// Head groups and channels whose weights are all zero score 0, are the ones
// removed, and removing them leaves the block's outputs unchanged (up to the
// fp32 summation order of the narrower matmuls).
TEST(Structured, ZeroImportanceStructuresRemovedGiveSameOutputs) {
  for (StructureImportance metric :
       {StructureImportance::kMagnitude, StructureImportance::kWanda, StructureImportance::kOutput}) {
    Model m = MakeRandomModel(SmallConfig(), 7);
    const int hd = m.config.head_dim;
    ZeroStructures(m.blocks[2], hd, /*g=*/2, /*c=*/30);
    const MatrixRM h0 = RandomHidden(9, m.config.dim, 8);
    NormObserver obs;
    MatrixRM before = h0;
    ASSERT_TRUE(RunBlock(m, 2, before, 0, nullptr, &obs, ThreadPool::Default()).ok());
    const BlockInputNorms n = obs.Norms();
    auto hs = HeadGroupImportance(m.blocks[2], hd, metric, n);
    auto cs = ChannelImportance(m.blocks[2], metric, n);
    ASSERT_TRUE(hs.ok() && cs.ok());
    EXPECT_EQ((*hs)[2], 0.0);
    EXPECT_EQ((*cs)[30], 0.0);
    const std::vector<int> drop_h = LowestScored(*hs, 1), drop_c = LowestScored(*cs, 1);
    ASSERT_EQ(drop_h, std::vector<int>{2});
    ASSERT_EQ(drop_c, std::vector<int>{30});
    ASSERT_TRUE(RemoveHeadGroups(m.blocks[2], hd, drop_h).ok());
    ASSERT_TRUE(RemoveChannels(m.blocks[2], drop_c).ok());
    EXPECT_EQ(m.blocks[2].q_proj->out_features(), 6 * hd);
    EXPECT_EQ(m.blocks[2].k_proj->out_features(), 3 * hd);
    EXPECT_EQ(m.blocks[2].o_proj->in_features(), 6 * hd);
    EXPECT_EQ(m.blocks[2].gate_proj->out_features(), 47);
    EXPECT_EQ(m.blocks[2].down_proj->in_features(), 47);
    ASSERT_TRUE(ValidateModel(m).ok());
    MatrixRM after = h0;
    ASSERT_TRUE(RunBlock(m, 2, after, 0, nullptr, nullptr, ThreadPool::Default()).ok());
    EXPECT_LT((after - before).cwiseAbs().maxCoeff(), 1e-5f);
  }
}

// Removing k structures keeps exactly the complement: the kept rows / columns
// are the original ones, in order.
TEST(Structured, RemovalKeepsTheRightRowsAndColumns) {
  Model m = MakeRandomModel(SmallConfig(), 9);
  TransformerBlock& b = m.blocks[0];
  const int hd = m.config.head_dim;
  const MatrixRM q = b.q_proj->DenseWeight(), k = b.k_proj->DenseWeight(), o = b.o_proj->DenseWeight();
  const MatrixRM up = b.up_proj->DenseWeight(), down = b.down_proj->DenseWeight();
  ASSERT_TRUE(RemoveHeadGroups(b, hd, {0, 3}).ok());
  ASSERT_TRUE(RemoveChannels(b, {1, 5, 47}).ok());
  const MatrixRM q2 = b.q_proj->DenseWeight(), k2 = b.k_proj->DenseWeight(), o2 = b.o_proj->DenseWeight();
  EXPECT_EQ(q2, q.middleRows(2 * hd, 4 * hd));  // groups 1, 2 = query heads 2..5
  EXPECT_EQ(k2, k.middleRows(hd, 2 * hd));
  EXPECT_EQ(o2, o.middleCols(2 * hd, 4 * hd));
  const MatrixRM up2 = b.up_proj->DenseWeight(), down2 = b.down_proj->DenseWeight();
  ASSERT_EQ(up2.rows(), 45);
  EXPECT_EQ(up2.row(0), up.row(0));
  EXPECT_EQ(up2.row(1), up.row(2));
  EXPECT_EQ(up2.row(44), up.row(46));
  EXPECT_EQ(down2.col(4), down.col(6));
  // Bad requests.
  EXPECT_FALSE(RemoveHeadGroups(b, hd, {0, 1}).ok());  // all remaining groups
  EXPECT_FALSE(RemoveChannels(b, {3, 3}).ok());
  EXPECT_FALSE(RemoveChannels(b, {45}).ok());
}

// Non-uniform widths go into config.json's squeeze_layer_widths, uniform ones
// into the standard keys; both reload through LoadModel with the same logits.
TEST(Structured, SaveLoadSameLogits) {
  for (bool uniform : {false, true}) {
    SCOPED_TRACE(uniform ? "uniform" : "per-layer");
    Model m = MakeRandomModel(SmallConfig(), 12);
    const int hd = m.config.head_dim;
    for (int l = 0; l < m.config.n_layers; ++l) {
      const int groups = uniform ? 1 : l;  // layer 0 keeps all heads when not uniform
      std::vector<int> g;
      for (int i = 0; i < groups; ++i) g.push_back(i);
      ASSERT_TRUE(RemoveHeadGroups(m.blocks[l], hd, g).ok());
      std::vector<int> c;
      for (int i = 0; i < (uniform ? 10 : 5 * (l + 1)); ++i) c.push_back(2 * i);
      ASSERT_TRUE(RemoveChannels(m.blocks[l], c).ok());
    }
    const std::string dir = ::testing::TempDir() + "/squeeze_structured_save_" + (uniform ? "u" : "p");
    fs::remove_all(dir);
    ASSERT_TRUE(SaveModel(m, dir).ok());
    auto cfg_text = ReadFileToString(dir + "/config.json");
    ASSERT_TRUE(cfg_text.ok());
    const nlohmann::json cfg = nlohmann::json::parse(*cfg_text);
    if (uniform) {
      EXPECT_FALSE(cfg.contains("squeeze_layer_widths"));
      EXPECT_EQ(cfg["num_attention_heads"], 6);
      EXPECT_EQ(cfg["num_key_value_heads"], 3);
      EXPECT_EQ(cfg["intermediate_size"], 38);
      EXPECT_EQ(cfg["head_dim"], hd);
    } else {
      const nlohmann::json& w = cfg["squeeze_layer_widths"];
      EXPECT_EQ(w["num_attention_heads"], nlohmann::json({8, 6, 4}));
      EXPECT_EQ(w["num_key_value_heads"], nlohmann::json({4, 3, 2}));
      EXPECT_EQ(w["intermediate_size"], nlohmann::json({43, 38, 33}));
      EXPECT_EQ(cfg["num_attention_heads"], 8);
      EXPECT_EQ(cfg["intermediate_size"], 43);
    }
    auto loaded = LoadModel(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const std::vector<int> tokens = {1, 5, 9, 33, 2, 17, 40};
    MatrixRM a, b;
    KVCache ca(m, 16), cb(*loaded, 16);
    ASSERT_TRUE(Forward(m, tokens, 0, ca, a).ok());
    ASSERT_TRUE(Forward(*loaded, tokens, 0, cb, b).ok());
    EXPECT_EQ(a, b);
    // A config whose per-layer widths disagree with the tensors is refused,
    // naming the tensor.
    if (!uniform) {
      nlohmann::json bad = cfg;
      bad["squeeze_layer_widths"]["intermediate_size"][1] = 40;
      ASSERT_TRUE(WriteFileAtomically(dir + "/config.json", bad.dump()).ok());
      auto refused = LoadModel(dir);
      ASSERT_FALSE(refused.ok());
      EXPECT_NE(std::string(refused.status().message()).find("model.layers.1.mlp.gate_proj"), std::string::npos)
          << refused.status();
      bad["squeeze_layer_widths"]["intermediate_size"] = {43, 38};
      ASSERT_TRUE(WriteFileAtomically(dir + "/config.json", bad.dump()).ok());
      EXPECT_EQ(LoadModel(dir).status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

// An identity block (zero o_proj and down_proj) has block influence 0, is
// the least influential, and removing it leaves the logits unchanged.
TEST(Structured, BlockInfluenceFindsAndRemovesAnIdentityBlock) {
  Model m = MakeRandomModel(SmallConfig(), 21);
  SetLinear(m.blocks[1].o_proj, MatrixRM::Zero(m.config.dim, m.blocks[1].o_proj->in_features()));
  SetLinear(m.blocks[1].down_proj, MatrixRM::Zero(m.config.dim, m.blocks[1].down_proj->in_features()));
  const std::vector<std::vector<int>> seqs = {{1, 4, 8, 15, 16, 23, 42}, {1, 7, 7, 9}};
  auto bi = BlockInfluence(m, seqs);
  ASSERT_TRUE(bi.ok()) << bi.status();
  ASSERT_EQ(bi->size(), 3u);
  EXPECT_NEAR((*bi)[1], 0.0, 1e-6);
  EXPECT_GT((*bi)[0], 1e-3);
  EXPECT_GT((*bi)[2], 1e-3);
  EXPECT_EQ(LowestScored(*bi, 1), std::vector<int>{1});
  MatrixRM before, after;
  {
    KVCache c(m, 16);
    ASSERT_TRUE(Forward(m, seqs[0], 0, c, before).ok());
  }
  ASSERT_TRUE(RemoveBlocks(m, {1}).ok());
  EXPECT_EQ(m.config.n_layers, 2);
  EXPECT_EQ(m.blocks.size(), 2u);
  {
    KVCache c(m, 16);
    ASSERT_TRUE(Forward(m, seqs[0], 0, c, after).ok());
  }
  EXPECT_EQ(before, after);
  EXPECT_FALSE(RemoveBlocks(m, {0, 1}).ok());
  EXPECT_FALSE(RemoveBlocks(m, {2}).ok());
}

// ---- The real stories260K model. ----

const std::string kShared = SQUEEZE_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K/hf";

int64_t LinearParams(Model& m) {
  int64_t n = 0;
  for (const LinearSlot& s : m.AllLinears()) n += (*s.slot)->in_features() * (*s.slot)->out_features();
  return n;
}

// StructuredPruningModifier through RunRecipe at a 25% ratio: the block
// parameters drop by the requested fraction (up to rounding to whole head
// groups / channels), perplexity is finite and the artifact reloads with the
// same logits as the in-memory model the runner evaluated.
TEST(Structured, RealModelThroughRunRecipe) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " is absent (needs ../shared)";
  struct Case {
    const char* importance;
    double ppl = 0.0;
  };
  std::vector<Case> cases = {{"magnitude"}, {"wanda"}, {"output"}};
  double dense = 0.0;
  for (Case& c : cases) {
    const std::string out = test_inputs::FreshTestDir("squeeze_structured_real_", c.importance);
    auto recipe = ParseRecipe(std::string("num_calibration_samples: 16\nmax_seq_length: 128\n"
                                          "s:\n  p_modifiers:\n    StructuredPruningModifier: "
                                          "{pruning_ratio: 0.25, importance: ") +
                              c.importance + "}\n");
    ASSERT_TRUE(recipe.ok()) << recipe.status();
    RunOptions o = test_inputs::PerplexityRunOptions(kStories, out, kShared + "/data/tinystories/valid.txt");
    o.calib_text_path = kShared + "/data/tinystories/train.txt";
    auto r = test_inputs::RunQuietly(*recipe, o);
    ASSERT_TRUE(r.ok()) << r.status();
    dense = r->report["perplexity"]["before"].get<double>();
    c.ppl = r->report["perplexity"]["after"].get<double>();
    const nlohmann::json& size = r->report["size"];
    const double lb = size["before"]["linear_params"].get<double>(), la = size["after"]["linear_params"].get<double>();
    std::cout << "stories260K structured 25% (" << c.importance << "): perplexity " << dense << " -> " << c.ppl
              << ", params " << size["before"]["params"] << " -> " << size["after"]["params"]
              << ", linear params " << lb << " -> " << la << "\n";
    // 5 blocks: 1 of 4 head groups (25%) and round(0.25 * 172) = 43 of 172
    // channels (25%) removed from each; block linears drop by exactly 25%.
    EXPECT_DOUBLE_EQ(lb - la, 0.25 * lb);
    EXPECT_TRUE(std::isfinite(c.ppl));
    EXPECT_GT(c.ppl, dense);
    auto loaded = LoadCompressedModel(out);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->config.n_heads, 6);
    EXPECT_EQ(loaded->config.n_kv_heads, 3);
    EXPECT_EQ(loaded->config.hidden_dim, 129);
    EXPECT_EQ(LinearParams(*loaded), static_cast<int64_t>(la));
    auto dense_model = LoadModel(kStories);
    ASSERT_TRUE(dense_model.ok());
    const ModelCost cd = ComputeModelCost(*dense_model, 256), cp = ComputeModelCost(*loaded, 256);
    std::cout << "  FLOPs/token at context 256: " << cd.flops_per_token << " -> " << cp.flops_per_token << " ("
              << 100.0 * cp.flops_per_token / cd.flops_per_token << "%), linear FLOPs " << 2 * cd.macs_linears
              << " -> " << 2 * cp.macs_linears << ", attention " << 2 * cd.macs_attention << " -> "
              << 2 * cp.macs_attention << "\n";
    EXPECT_EQ(4 * cp.macs_linears, 3 * cd.macs_linears);      // block linears: exactly 75% left
    EXPECT_EQ(4 * cp.macs_attention, 3 * cd.macs_attention);  // 6 of 8 query heads left
    auto tok_path = FindTokenizerFor(out);
    ASSERT_TRUE(tok_path.ok()) << tok_path.status();
    auto tok = LoadTokenizer(*tok_path);
    ASSERT_TRUE(tok.ok());
    auto valid = ReadFileToString(kShared + "/data/tinystories/valid.txt");
    ASSERT_TRUE(valid.ok());
    PerplexityOptions po;
    po.seq_len = 256;
    auto again = EvaluatePerplexity(*loaded, **tok, SplitDocuments(valid->substr(0, 6000), "<|endoftext|>"), po);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_DOUBLE_EQ(again->perplexity, c.ppl);  // the reloaded artifact is the evaluated model
    fs::remove_all(out);
  }
  // Activation-aware importance beats plain magnitude (the LLM-Pruner / FLAP
  // finding), on this model too.
  EXPECT_LT(cases[1].ppl, cases[0].ppl);
}

// Whole-layer removal by block influence on stories260K: the least
// influential block per BI is removed and the model still runs.
TEST(Structured, RealModelLayerRemovalByBlockInfluence) {
  if (!fs::exists(kStories)) GTEST_SKIP() << kStories << " is absent (needs ../shared)";
  auto model = LoadModel(kStories);
  ASSERT_TRUE(model.ok()) << model.status();
  auto tok_path = FindTokenizerFor(kStories);
  ASSERT_TRUE(tok_path.ok());
  auto tok = LoadTokenizer(*tok_path);
  ASSERT_TRUE(tok.ok());
  auto train = ReadFileToString(kShared + "/data/tinystories/train.txt");
  auto valid = ReadFileToString(kShared + "/data/tinystories/valid.txt");
  ASSERT_TRUE(train.ok() && valid.ok());
  const std::vector<int> ids = (*tok)->Encode(train->substr(0, 20000), false);
  std::vector<std::vector<int>> seqs;
  for (size_t p = 0; p + 127 <= ids.size() && seqs.size() < 16; p += 127) {
    std::vector<int> s{(*tok)->bos_id()};
    s.insert(s.end(), ids.begin() + p, ids.begin() + p + 127);
    seqs.push_back(std::move(s));
  }
  auto bi = BlockInfluence(*model, seqs);
  ASSERT_TRUE(bi.ok()) << bi.status();
  const std::vector<std::string> docs = SplitDocuments(valid->substr(0, 6000), "<|endoftext|>");
  PerplexityOptions po;
  po.seq_len = 256;
  auto dense = EvaluatePerplexity(*model, **tok, docs, po);
  ASSERT_TRUE(dense.ok());
  std::cout << "stories260K block influence:";
  for (double x : *bi) std::cout << " " << x;
  std::cout << "\n";
  // Perplexity after removing each single block: the BI choice should be
  // among the cheaper ones (reported, and checked against the worst).
  std::vector<double> ppl_without(bi->size());
  for (int l = 0; l < static_cast<int>(bi->size()); ++l) {
    auto m = LoadModel(kStories);
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(RemoveBlocks(*m, {l}).ok());
    auto p = EvaluatePerplexity(*m, **tok, docs, po);
    ASSERT_TRUE(p.ok()) << p.status();
    ppl_without[l] = p->perplexity;
    std::cout << "  without layer " << l << ": perplexity " << dense->perplexity << " -> " << p->perplexity << "\n";
  }
  const int chosen = LowestScored(*bi, 1)[0];
  EXPECT_LT(ppl_without[chosen], *std::max_element(ppl_without.begin(), ppl_without.end()));
  EXPECT_TRUE(std::isfinite(ppl_without[chosen]));
}

}  // namespace
}  // namespace squeeze
