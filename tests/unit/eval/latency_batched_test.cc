// Latency with the batched forward (LatencyOptions::batched, the default)
// and the sequential baseline: both protocols run the same bookkeeping, each
// point says which protocol measured it (report.json's "batched" key is
// checked in tests/unit/runner/report_eval_test.cc). No wall-clock asserts.
#include <gtest/gtest.h>

#include "tests/unit/eval/eval_test_models.h"
#include "workers/engine/eval/latency.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

Model Small() { return MakeRandomModel(testing::TinyLatencyConfig(), 4); }

TEST(LatencyBatchedTest, BothProtocolsCountTheSameStepsAndSayWhichRan) {
  const Model m = Small();
  for (bool batched : {true, false}) {
    LatencyOptions o;
    o.batch_sizes = {1, 8};
    o.prompt_len = 6;
    o.decode_tokens = 5;
    o.warmup = 1;
    o.repetitions = 2;
    o.max_seconds = 1e9;
    o.batched = batched;
    auto r = MeasureLatency(m, o);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->points.size(), 2u);
    for (const LatencyPoint& p : r->points) {
      EXPECT_EQ(p.batched, batched);
      EXPECT_EQ(p.repetitions, 2);
      EXPECT_EQ(p.decode_steps, 2 * 5);  // one step per decode token, whatever B
      EXPECT_GT(p.decode_tokens_per_s, 0);
      EXPECT_GT(p.prefill_tokens_per_s, 0);
    }
  }
  EXPECT_TRUE(LatencyOptions().batched) << "batched is the default protocol";
}

}  // namespace
}  // namespace squeeze
