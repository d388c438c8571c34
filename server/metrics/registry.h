// A small metrics registry: counters, gauges and histograms with labels,
// rendered in the Prometheus text exposition format 0.0.4 (text_format.h).
//
//   metrics::Registry reg;
//   SQ_ASSIGN_OR_RETURN(auto* jobs, reg.AddCounter("squeeze_jobs_total", "Jobs.", {"state"}));
//   jobs->WithLabels({"done"}).Increment();
//   std::string text = reg.Render();
//
// Invariants:
//   - thread-safe: any thread may update any metric while another renders;
//   - a child returned by WithLabels() lives as long as the registry (the
//     reference stays valid; keep it to skip the lookup on hot paths);
//   - counters never decrease: negative and NaN increments are ignored;
//   - output is deterministic: families sorted by name, children by label values;
//     a family with no children yet renders nothing (as the Go client does);
//   - names are checked at registration: metric and label names must match the
//     Prometheus grammar, counter names end in "_total" (promtool's lint rule),
//     histograms may not use the label "le"; a clash or bad name is an
//     InvalidArgument/AlreadyExists error naming it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace squeeze::metrics {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void Increment(double v = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `upper_bounds`: strictly increasing, finite (checked by the registry); the
  // +Inf bucket is implicit.
  explicit Histogram(std::shared_ptr<const std::vector<double>> upper_bounds);
  // Counts `v` in every bucket with v <= le. NaN is ignored.
  void Observe(double v);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Snap() const;
  const std::vector<double>& upper_bounds() const { return *bounds_; }

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), +Inf last
  double sum_ = 0;
  uint64_t count_ = 0;
};

// The families' common part: name, help, label names, rendering.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  // Appends "# HELP", "# TYPE" and the samples (nothing when no children).
  virtual void Render(std::string& out) const = 0;

 protected:
  // `{a="x",b="y"}` for these values, plus an optional extra pair (le="...").
  std::string LabelText(const LabelValues& values, const char* extra_name = nullptr,
                        const std::string& extra_value = "") const;
  // Aborts with a message naming the family: a programming error, like a
  // wrong argument count (the Go and Java clients panic/throw here too).
  void CheckArity(const LabelValues& values) const;
  std::string name_, help_;
  std::vector<std::string> label_names_;
};

template <typename T>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;
  // The child for these label values (one per label name, in order), created
  // on first use.
  T& WithLabels(const LabelValues& values) {
    CheckArity(values);
    std::lock_guard<std::mutex> lk(mu_);
    auto it = children_.find(values);
    if (it == children_.end()) it = children_.emplace(values, NewChild()).first;
    return *it->second;
  }
  // The single child of a family without labels.
  T& Get() { return WithLabels({}); }
  void Render(std::string& out) const override;

 private:
  std::unique_ptr<T> NewChild() const;
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;

  friend class Registry;
  std::shared_ptr<const std::vector<double>> bounds_;  // histograms only
};

// Defined in registry.cc for the three metric types.
template <>
std::unique_ptr<Counter> Family<Counter>::NewChild() const;
template <>
std::unique_ptr<Gauge> Family<Gauge>::NewChild() const;
template <>
std::unique_ptr<Histogram> Family<Histogram>::NewChild() const;
template <>
void Family<Counter>::Render(std::string& out) const;
template <>
void Family<Gauge>::Render(std::string& out) const;
template <>
void Family<Histogram>::Render(std::string& out) const;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  absl::StatusOr<Family<Counter>*> AddCounter(const std::string& name, const std::string& help,
                                              const std::vector<std::string>& label_names = {});
  absl::StatusOr<Family<Gauge>*> AddGauge(const std::string& name, const std::string& help,
                                          const std::vector<std::string>& label_names = {});
  // `upper_bounds`: non-empty, strictly increasing, finite (a trailing +Inf is
  // dropped: that bucket always exists).
  absl::StatusOr<Family<Histogram>*> AddHistogram(const std::string& name, const std::string& help,
                                                  const std::vector<std::string>& label_names,
                                                  std::vector<double> upper_bounds);

  // Runs before every Render, in the order added (e.g. to set gauges that are
  // computed from a database at scrape time). Renders are serialized, so a
  // hook never runs concurrently with itself.
  void AddCollectHook(std::function<void()> hook);

  // Every family, sorted by name, in the text exposition format 0.0.4.
  std::string Render() const;

 private:
  // Validates name, help and labels (no lock needed: pure checks).
  absl::Status CheckNew(const std::string& name, const std::string& help,
                        const std::vector<std::string>& label_names) const;
  // Insert checks for a clash and inserts under one lock of mu_.
  template <typename T>
  absl::StatusOr<Family<T>*> Insert(std::unique_ptr<Family<T>> family);

  mutable std::mutex render_mu_;  // serializes Render (hooks included)
  mutable std::mutex mu_;         // guards the two members below
  std::map<std::string, std::unique_ptr<FamilyBase>> families_;
  std::vector<std::function<void()>> hooks_;
};

// Bucket helpers. Exponential: start, start*factor, ... (count bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// Latencies from 1 ms to ~65 s, doubling (17 buckets): RPCs and job stages.
std::vector<double> LatencyBuckets();

}  // namespace squeeze::metrics
