// WorkerMetrics: stage boundaries from progress events, CPU accounting,
// outcomes and the cap on distinct stage names, read back from the rendered
// exposition text.
#include "workers/worker/worker_metrics.h"

#include <cmath>
#include <sstream>

#include "gtest/gtest.h"
#include "server/metrics/process_metrics.h"
#include "tests/common/metrics_text.h"

namespace squeeze::worker {
namespace {

using test_inputs::Sample;

// Spends about `seconds` of CPU time on this thread; returns what was spent.
double BurnCpu(double seconds) {
  const double start = metrics::ProcessCpuSeconds();
  volatile double x = 0;
  while (metrics::ProcessCpuSeconds() - start < seconds) {
    for (int i = 0; i < 100000; ++i) x = x + i * 1e-9;
  }
  return metrics::ProcessCpuSeconds() - start;
}

TEST(WorkerMetrics, StagesSpanFromThePreviousStagesLastEvent) {
  metrics::Registry reg;
  auto m = WorkerMetrics::Create(reg);
  ASSERT_TRUE(m.ok()) << m.status();
  WorkerMetrics& wm = **m;
  wm.TaskStarted();
  EXPECT_EQ(Sample(reg.Render(), "squeeze_worker_busy"), 1);
  wm.EnterStage("fetch");
  const double fetch_cpu = BurnCpu(0.05);
  wm.OnProgress("load");  // ends fetch (a worker-driven stage) now
  wm.OnProgress("load");  // "model loaded": load's last event
  // The first layer of stage1 is computed here and reported when done: its CPU
  // belongs to stage1, not to load.
  const double layer1_cpu = BurnCpu(0.2);
  wm.OnProgress("stage1");
  const double layer2_cpu = BurnCpu(0.05);
  wm.OnProgress("stage1");
  wm.EnterStage("upload");
  wm.TaskEnded("succeeded");

  const std::string text = reg.Render();
  for (const char* stage : {"fetch", "load", "stage1", "upload"}) {
    EXPECT_EQ(Sample(text, std::string("squeeze_worker_stage_seconds_count{stage=\"") + stage + "\"}"), 1) << stage;
    EXPECT_EQ(Sample(text, std::string("squeeze_worker_stage_gpu_seconds_total{stage=\"") + stage + "\"}"), 0);
  }
  const double cpu_fetch = Sample(text, "squeeze_worker_stage_cpu_seconds_total{stage=\"fetch\"}");
  const double cpu_load = Sample(text, "squeeze_worker_stage_cpu_seconds_total{stage=\"load\"}");
  const double cpu_stage1 = Sample(text, "squeeze_worker_stage_cpu_seconds_total{stage=\"stage1\"}");
  EXPECT_GE(cpu_fetch, fetch_cpu);
  EXPECT_GE(cpu_stage1, layer1_cpu + layer2_cpu);
  EXPECT_LT(cpu_load, layer1_cpu / 2) << "layer 1's CPU was charged to load";
  // One busy thread: the stage's wall time is at least the CPU it burnt.
  EXPECT_GE(Sample(text, "squeeze_worker_stage_seconds_sum{stage=\"stage1\"}"), layer1_cpu + layer2_cpu);
  EXPECT_EQ(Sample(text, "squeeze_worker_tasks_total{outcome=\"succeeded\"}"), 1);
  EXPECT_EQ(Sample(text, "squeeze_worker_tasks_total{outcome=\"failed\"}"), 0);
  EXPECT_EQ(Sample(text, "squeeze_worker_busy"), 0);
}

TEST(WorkerMetrics, RepeatedStageNamesAreSeparateObservations) {
  metrics::Registry reg;
  auto m = *WorkerMetrics::Create(reg);
  m->OnProgress("eval");
  m->OnProgress("s1");
  m->OnProgress("eval");  // the evaluation after the stages
  m->EndStage();
  m->EndStage();  // nothing open: no-op
  const std::string text = reg.Render();
  EXPECT_EQ(Sample(text, "squeeze_worker_stage_seconds_count{stage=\"eval\"}"), 2);
  EXPECT_EQ(Sample(text, "squeeze_worker_stage_seconds_count{stage=\"s1\"}"), 1);
}

TEST(WorkerMetrics, DistinctStageNamesAreCapped) {
  metrics::Registry reg;
  auto m = *WorkerMetrics::Create(reg);
  for (int i = 0; i < WorkerMetrics::kMaxStages + 8; ++i) m->OnProgress("stage_" + std::to_string(i));
  m->EndStage();
  const std::string text = reg.Render();
  EXPECT_EQ(Sample(text, "squeeze_worker_stage_seconds_count{stage=\"stage_31\"}"), 1);
  EXPECT_TRUE(std::isnan(Sample(text, "squeeze_worker_stage_seconds_count{stage=\"stage_32\"}")));
  EXPECT_EQ(Sample(text, "squeeze_worker_stage_seconds_count{stage=\"other\"}"), 8);
}

}  // namespace
}  // namespace squeeze::worker
