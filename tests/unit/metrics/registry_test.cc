// The registry's output is compared with hand-written text in the Prometheus
// exposition format 0.0.4; a real `promtool check metrics` run on the same
// kind of output is in tests/integration/metrics.
#include "server/metrics/registry.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/metrics/process_metrics.h"
#include "server/metrics/text_format.h"

namespace squeeze::metrics {
namespace {

TEST(TextFormat, Values) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(123456789012.0), "123456789012");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(TextFormat, Escaping) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\nbye"), "say \"hi\"\\\\\\nbye");
  EXPECT_EQ(EscapeLabelValue("caf\xC3\xA9"), "caf\xC3\xA9");             // valid UTF-8 kept
  EXPECT_EQ(EscapeLabelValue("x\xFFy"), "x\xEF\xBF\xBDy");              // stray byte -> U+FFFD
  EXPECT_EQ(EscapeLabelValue("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(EscapeLabelValue("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated
}

TEST(TextFormat, Names) {
  EXPECT_TRUE(IsValidMetricName("squeeze_jobs"));
  EXPECT_TRUE(IsValidMetricName("a:b_c9"));
  EXPECT_FALSE(IsValidMetricName("9abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_TRUE(IsValidLabelName("state"));
  EXPECT_FALSE(IsValidLabelName("__name"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
}

TEST(Registry, RendersCountersAndGaugesExactly) {
  Registry r;
  auto jobs = r.AddCounter("sq_jobs_total", "Jobs that ended, by state.", {"state"});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  auto depth = r.AddGauge("sq_queue_depth", "Queued jobs.\nBy capability \\ kind.", {"capability", "note"});
  ASSERT_TRUE(depth.ok()) << depth.status();
  auto up = r.AddGauge("sq_up", "1 when serving.");
  ASSERT_TRUE(up.ok());
  (*jobs)->WithLabels({"succeeded"}).Increment();
  (*jobs)->WithLabels({"succeeded"}).Increment(2);
  (*jobs)->WithLabels({"failed"}).Increment(0.5);
  (*jobs)->WithLabels({"failed"}).Increment(-7);  // ignored: counters never go down
  (*depth)->WithLabels({"gpu", "say \"hi\"\n"}).Set(3);
  (*depth)->WithLabels({"cpu", "back\\slash"}).Add(-1.25);
  (*up)->Get().Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP sq_jobs_total Jobs that ended, by state.\n"
            "# TYPE sq_jobs_total counter\n"
            "sq_jobs_total{state=\"failed\"} 0.5\n"
            "sq_jobs_total{state=\"succeeded\"} 3\n"
            "# HELP sq_queue_depth Queued jobs.\\nBy capability \\\\ kind.\n"
            "# TYPE sq_queue_depth gauge\n"
            "sq_queue_depth{capability=\"cpu\",note=\"back\\\\slash\"} -1.25\n"
            "sq_queue_depth{capability=\"gpu\",note=\"say \\\"hi\\\"\\n\"} 3\n"
            "# HELP sq_up 1 when serving.\n"
            "# TYPE sq_up gauge\n"
            "sq_up 1\n");
}

TEST(Registry, RendersHistogramsExactly) {
  Registry r;
  auto lat = r.AddHistogram("sq_latency_seconds", "Latency.", {"stage"}, {0.1, 0.5, 2.5});
  ASSERT_TRUE(lat.ok()) << lat.status();
  Histogram& h = (*lat)->WithLabels({"load"});
  for (double v : {0.05, 0.1, 0.3, 3.0, 100.0}) h.Observe(v);  // 0.1 falls in le="0.1" (inclusive)
  h.Observe(std::nan(""));                                       // ignored
  (*lat)->WithLabels({"save"});                                  // an empty child renders zeros
  EXPECT_EQ(r.Render(),
            "# HELP sq_latency_seconds Latency.\n"
            "# TYPE sq_latency_seconds histogram\n"
            "sq_latency_seconds_bucket{stage=\"load\",le=\"0.1\"} 2\n"
            "sq_latency_seconds_bucket{stage=\"load\",le=\"0.5\"} 3\n"
            "sq_latency_seconds_bucket{stage=\"load\",le=\"2.5\"} 3\n"
            "sq_latency_seconds_bucket{stage=\"load\",le=\"+Inf\"} 5\n"
            "sq_latency_seconds_sum{stage=\"load\"} 103.45\n"
            "sq_latency_seconds_count{stage=\"load\"} 5\n"
            "sq_latency_seconds_bucket{stage=\"save\",le=\"0.1\"} 0\n"
            "sq_latency_seconds_bucket{stage=\"save\",le=\"0.5\"} 0\n"
            "sq_latency_seconds_bucket{stage=\"save\",le=\"2.5\"} 0\n"
            "sq_latency_seconds_bucket{stage=\"save\",le=\"+Inf\"} 0\n"
            "sq_latency_seconds_sum{stage=\"save\"} 0\n"
            "sq_latency_seconds_count{stage=\"save\"} 0\n");
}

TEST(Registry, UnlabelledHistogramAndTrailingInf) {
  Registry r;
  auto h = r.AddHistogram("sq_submit_seconds", "Submit latency.", {},
                          {1, std::numeric_limits<double>::infinity()});
  ASSERT_TRUE(h.ok()) << h.status();
  (*h)->Get().Observe(0.25);
  EXPECT_EQ(r.Render(),
            "# HELP sq_submit_seconds Submit latency.\n"
            "# TYPE sq_submit_seconds histogram\n"
            "sq_submit_seconds_bucket{le=\"1\"} 1\n"
            "sq_submit_seconds_bucket{le=\"+Inf\"} 1\n"
            "sq_submit_seconds_sum 0.25\n"
            "sq_submit_seconds_count 1\n");
}

TEST(Registry, EmptyFamiliesRenderNothingAndOrderIsByName) {
  Registry r;
  ASSERT_TRUE(r.AddGauge("zz", "Last.").ok());
  ASSERT_TRUE(r.AddCounter("aa_total", "First.", {"x"}).ok());  // no child yet
  r.AddGauge("mm", "Middle.").value()->Get().Set(2);
  r.AddGauge("b", "Second.").value()->Get();
  EXPECT_EQ(r.Render(),
            "# HELP b Second.\n# TYPE b gauge\nb 0\n"
            "# HELP mm Middle.\n# TYPE mm gauge\nmm 2\n");
}

TEST(Registry, RejectsBadRegistrations) {
  Registry r;
  ASSERT_TRUE(r.AddGauge("ok_gauge", "Fine.").ok());
  EXPECT_EQ(r.AddGauge("ok_gauge", "Again.").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddCounter("requests", "No suffix.").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGauge("bad-name", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGauge("no_help", "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGauge("g1", "x", {"__reserved"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGauge("g2", "x", {"a", "a"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h1", "x", {"le"}, {1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h2", "x", {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h3", "x", {}, {1, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h4", "x", {}, {2, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddHistogram("h5", "x", {}, {std::nan("")}).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(r.AddCounter("requests", "No suffix.").status().message());
  EXPECT_NE(msg.find("requests"), std::string::npos) << msg;
  // The failed registrations left nothing behind.
  EXPECT_EQ(r.Render(), "");
}

TEST(RegistryDeathTest, WrongLabelCountAborts) {
  Registry r;
  auto f = *r.AddCounter("sq_x_total", "X.", {"a", "b"});
  EXPECT_DEATH(f->WithLabels({"only-one"}), "sq_x_total takes 2 label values");
}

TEST(Registry, CollectHooksRunBeforeEachRender) {
  Registry r;
  Gauge& g = r.AddGauge("sq_scrapes", "Renders so far.").value()->Get();
  int calls = 0;
  r.AddCollectHook([&] { g.Set(++calls); });
  EXPECT_NE(r.Render().find("sq_scrapes 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("sq_scrapes 2\n"), std::string::npos);
}

TEST(Registry, ConcurrentUpdatesAreAllCounted) {
  Registry r;
  auto* c = *r.AddCounter("sq_events_total", "Events.", {"t"});
  auto* h = *r.AddHistogram("sq_obs", "Obs.", {}, {0.5});
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        c->WithLabels({t % 2 ? "odd" : "even"}).Increment();
        h->Get().Observe(i % 2 ? 1.0 : 0.25);
        if (i % 5000 == 0) (void)r.Render();  // rendering while updating is safe
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->WithLabels({"odd"}).Value(), 2.0 * kEach);
  EXPECT_EQ(c->WithLabels({"even"}).Value(), 2.0 * kEach);
  const Histogram::Snapshot s = h->Get().Snap();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kEach);
  EXPECT_EQ(s.cumulative[0], uint64_t{kThreads} * kEach / 2);
  EXPECT_DOUBLE_EQ(s.sum, kThreads * (kEach / 2) * 1.25);
}

TEST(ProcessMetrics, ReportsThisProcess) {
  Registry r;
  ASSERT_TRUE(AddProcessMetrics(r).ok());
  // Burn a little CPU so the counter is visibly positive.
  volatile double x = 0;
  for (int i = 0; i < 20'000'000; ++i) x = x + i * 1e-9;
  const std::string text = r.Render();
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_start_time_seconds ", "process_virtual_memory_bytes "}) {
    EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name << " missing in\n" << text;
  }
  EXPECT_GT(ProcessCpuSeconds(), 0.0);
  const size_t at = text.find("\nprocess_start_time_seconds ");
  const double start = std::stod(text.substr(at + 28));
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GT(start, now - 3600);  // started within the hour (boot time + ticks is consistent)
  EXPECT_LE(start, now + 1);
}

}  // namespace
}  // namespace squeeze::metrics
