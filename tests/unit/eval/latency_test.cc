// Latency measurement: option checks and the bookkeeping of repetitions,
// steps, quantiles and memory on a small random model (no wall-clock asserts).
#include "workers/engine/eval/latency.h"

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/eval/eval_test_models.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/model/kv_cache.h"
#include "workers/engine/model/synthetic_model.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

Model Small() { return MakeRandomModel(testing::TinyLatencyConfig(), 3); }

TEST(LatencyTest, RejectsBadOptionsNamingThem) {
  const Model m = Small();
  LatencyOptions o;
  o.batch_sizes = {0};
  EXPECT_THAT(MeasureLatency(m, o).status().message(), HasSubstr("batch_sizes"));
  o = LatencyOptions();
  o.prompt_len = 30;
  o.decode_tokens = 8;
  EXPECT_THAT(MeasureLatency(m, o).status().message(), HasSubstr("context length 32"));
  o = LatencyOptions();
  o.prompt_len = 8;
  o.decode_tokens = 0;
  EXPECT_THAT(MeasureLatency(m, o).status().message(), HasSubstr("decode_tokens"));
  o = LatencyOptions();
  o.prompt_len = 8;
  o.decode_tokens = 4;
  o.repetitions = 0;
  EXPECT_THAT(MeasureLatency(m, o).status().message(), HasSubstr("repetitions"));
}

TEST(LatencyTest, CountsRepetitionsStepsAndMemory) {
  const Model m = Small();
  LatencyOptions o;
  o.batch_sizes = {1, 3};
  o.prompt_len = 8;
  o.decode_tokens = 4;
  o.warmup = 1;
  o.repetitions = 3;
  o.max_seconds = 1e9;
  auto r = MeasureLatency(m, o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->points.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const LatencyPoint& p = r->points[i];
    EXPECT_EQ(p.batch, o.batch_sizes[i]);
    EXPECT_EQ(p.repetitions, 3);
    EXPECT_EQ(p.decode_steps, 3 * 4);
    EXPECT_GT(p.prefill_ms_per_token_p50, 0);
    EXPECT_GT(p.decode_ms_per_token_p50, 0);
    EXPECT_LE(p.prefill_ms_per_token_p50, p.prefill_ms_per_token_p90);
    EXPECT_LE(p.decode_ms_per_token_p50, p.decode_ms_per_token_p90);
    EXPECT_DOUBLE_EQ(p.decode_tokens_per_s, 1000.0 / p.decode_ms_per_token_p50);
    EXPECT_DOUBLE_EQ(p.prefill_tokens_per_s, 1000.0 / p.prefill_ms_per_token_p50);
  }
  EXPECT_EQ(r->model_bytes, ComputeModelCost(m).bytes_total);
  EXPECT_EQ(r->kv_cache_bytes, 3 * KVCache(m, 12).bytes());  // the largest batch's caches
  if (std::filesystem::exists("/proc/self/status")) {
    EXPECT_GT(r->rss_before_bytes, 0);
    EXPECT_GT(CurrentRssBytes(), 0);
    EXPECT_GE(PeakRssBytes(), CurrentRssBytes());
  }
}

TEST(LatencyTest, TimeBudgetStopsAfterOneTimedRepetition) {
  const Model m = Small();
  LatencyOptions o;
  o.batch_sizes = {2};
  o.prompt_len = 4;
  o.decode_tokens = 2;
  o.warmup = 0;
  o.repetitions = 50;
  o.max_seconds = 0;  // spent after the first timed repetition, whatever the machine
  auto r = MeasureLatency(m, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->points[0].repetitions, 1);
  EXPECT_EQ(r->points[0].decode_steps, 2);
}

}  // namespace
}  // namespace squeeze
