// DistillInPlace keeps each compressed kind: packed int layers stay packed on
// their grid (QAT) or become merged LoRA (dense), factorized layers stay U V
// factors, masked layers keep their zeros, untargeted layers stay untouched.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/common/synthetic_inputs.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/model/dense_linear.h"
#include "workers/engine/model/synthetic_model.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/distill/distill.h"
#include "workers/methods/lowrank/factorized_linear.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/methods/quant/packed_int_linear.h"
#include "workers/methods/quant/rtn.h"

namespace squeeze {
namespace {

ModelConfig Config() {
  return test_inputs::SmallGqaConfig(/*hidden_dim=*/64, /*n_layers=*/2, /*vocab_size=*/259, /*max_seq_len=*/64,
                                     /*tied=*/true);
}

std::unique_ptr<PackedIntLinear> Pack(const MatrixRM& w) {
  WeightQuantArgs a;
  a.num_bits = 4;
  a.symmetric = true;
  a.strategy = QuantStrategy::kGroup;
  a.group_size = 16;
  return std::move(QuantizeRtn(w, a)).value();
}

// Block 0: q packed, k factorized (rank 4), gate masked 50%; block 1 dense.
Model Student() {
  Model m = MakeRandomModel(Config(), 21);
  TransformerBlock& b = m.blocks[0];
  b.q_proj = Pack(b.q_proj->DenseWeight());
  const MatrixRM k = b.k_proj->DenseWeight();
  MatrixRM u = k.leftCols(4), v = MatrixRM::Identity(4, k.cols());
  b.k_proj = std::move(FactorizedLinear::Create(u, v)).value();
  MagnitudeOptions o;
  b.gate_proj = DenseLinear::FromMatrix(std::move(MagnitudePrune(b.gate_proj->DenseWeight(), o)).value());
  return m;
}

train::TokenDataset Data() {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(t ? t : "/tmp") + "/student_kinds";
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(WriteFileAtomically(dir + "/tok.bin", test_inputs::ByteTokenizerBin()).ok());
  EXPECT_TRUE(WriteFileAtomically(dir + "/text.txt", test_inputs::WordSalad(3)).ok());
  auto tok = LoadTokenizer(dir + "/tok.bin");
  return std::move(train::LoadTextDataset({{dir + "/text.txt", 1.0, 0}}, **tok, "", 16)).value();
}

TEST(StudentKinds, DistillKeepsEachCompressedKind) {
  const Model teacher = MakeRandomModel(Config(), 21);
  const train::TokenDataset data = Data();
  for (const char* mode : {"qat", "lora"}) {
    Model student = Student();
    const auto* packed_before = dynamic_cast<const PackedIntLinear*>(student.blocks[0].q_proj.get());
    ASSERT_NE(packed_before, nullptr);
    std::vector<float> scales_before;
    for (int64_t r = 0; r < packed_before->out_features(); ++r) scales_before.push_back(packed_before->Scale(r, 0));
    const MatrixRM gate_before = student.blocks[0].gate_proj->DenseWeight();
    const MatrixRM down1_before = student.blocks[1].down_proj->DenseWeight();
    DistillOptions o;
    o.train.steps = 5;
    o.train.batch = 2;
    o.train.seq = 16;
    o.train.lr = 1e-2f;
    o.train.loss = train::LossKind::kForwardKl;
    o.quantized_as = mode;
    o.lora_rank = 2;
    // Block 1's down_proj is not a target: frozen.
    o.trainable = [](const std::string& name) { return name != "model.layers.1.mlp.down_proj"; };
    ThreadPool pool(2);
    auto r = DistillInPlace(student, teacher, data, o, pool);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->history.size(), 5u);
    const TransformerBlock& b = student.blocks[0];
    if (std::string(mode) == "qat") {
      const auto* packed = dynamic_cast<const PackedIntLinear*>(b.q_proj.get());
      ASSERT_NE(packed, nullptr) << b.q_proj->kind();
      for (int64_t row = 0; row < packed->out_features(); ++row) EXPECT_EQ(packed->Scale(row, 0), scales_before[row]);
    } else {
      EXPECT_EQ(b.q_proj->kind(), "dense_f32");  // merged base + B A
    }
    EXPECT_EQ(b.k_proj->kind(), "lowrank_r4");
    const MatrixRM gate = b.gate_proj->DenseWeight();
    int64_t moved = 0;
    for (int64_t i = 0; i < gate.size(); ++i) {
      if (gate_before.data()[i] == 0.0f) {
        ASSERT_EQ(gate.data()[i], 0.0f) << i;
      } else {
        moved += gate.data()[i] != gate_before.data()[i];
      }
    }
    EXPECT_GT(moved, gate.size() / 4);
    EXPECT_TRUE(student.blocks[1].down_proj->DenseWeight() == down1_before);
    EXPECT_FALSE(student.blocks[1].up_proj->DenseWeight() == teacher.blocks[1].up_proj->DenseWeight());
  }
}

}  // namespace
}  // namespace squeeze
