#include "server/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/metrics/text_format.h"

namespace squeeze::metrics {

void Counter::Increment(double v) {
  if (!(v >= 0)) return;  // negative or NaN: a counter never goes down
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::shared_ptr<const std::vector<double>> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_->size() + 1, 0) {}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  // First bound >= v: buckets are "less than or equal to le".
  const size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  std::lock_guard<std::mutex> lk(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::Snap() const {
  Snapshot s;
  std::lock_guard<std::mutex> lk(mu_);
  s.cumulative.resize(counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    running += counts_[i];
    s.cumulative[i] = running;
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::string FamilyBase::LabelText(const LabelValues& values, const char* extra_name,
                                  const std::string& extra_value) const {
  if (values.empty() && extra_name == nullptr) return "";
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, label_names_[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (extra_name != nullptr) {
    if (!values.empty()) out += ',';
    absl::StrAppend(&out, extra_name, "=\"", extra_value, "\"");
  }
  out += '}';
  return out;
}

void FamilyBase::CheckArity(const LabelValues& values) const {
  if (values.size() == label_names_.size()) return;
  std::fprintf(stderr, "metrics: %s takes %zu label values (%s), got %zu\n", name_.c_str(), label_names_.size(),
               absl::StrJoin(label_names_, ",").c_str(), values.size());
  std::abort();
}

namespace {

void RenderHeader(std::string& out, const std::string& name, const std::string& help, const char* type) {
  absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

template <>
std::unique_ptr<Counter> Family<Counter>::NewChild() const {
  return std::make_unique<Counter>();
}
template <>
std::unique_ptr<Gauge> Family<Gauge>::NewChild() const {
  return std::make_unique<Gauge>();
}
template <>
std::unique_ptr<Histogram> Family<Histogram>::NewChild() const {
  return std::make_unique<Histogram>(bounds_);
}

template <>
void Family<Counter>::Render(std::string& out) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (children_.empty()) return;
  RenderHeader(out, name_, help_, "counter");
  for (const auto& [values, c] : children_) {
    absl::StrAppend(&out, name_, LabelText(values), " ", FormatValue(c->Value()), "\n");
  }
}

template <>
void Family<Gauge>::Render(std::string& out) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (children_.empty()) return;
  RenderHeader(out, name_, help_, "gauge");
  for (const auto& [values, g] : children_) {
    absl::StrAppend(&out, name_, LabelText(values), " ", FormatValue(g->Value()), "\n");
  }
}

template <>
void Family<Histogram>::Render(std::string& out) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (children_.empty()) return;
  RenderHeader(out, name_, help_, "histogram");
  for (const auto& [values, h] : children_) {
    const Histogram::Snapshot s = h->Snap();
    const std::vector<double>& bounds = h->upper_bounds();
    for (size_t i = 0; i <= bounds.size(); ++i) {
      const std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
      absl::StrAppend(&out, name_, "_bucket", LabelText(values, "le", le), " ", s.cumulative[i], "\n");
    }
    absl::StrAppend(&out, name_, "_sum", LabelText(values), " ", FormatValue(s.sum), "\n");
    absl::StrAppend(&out, name_, "_count", LabelText(values), " ", s.count, "\n");
  }
}

absl::Status Registry::CheckNew(const std::string& name, const std::string& help,
                                const std::vector<std::string>& label_names) const {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("metric name \"", name, "\" is not [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  if (help.empty()) return absl::InvalidArgumentError(absl::StrCat("metric ", name, ": help text is required"));
  std::set<std::string> seen;
  for (const std::string& l : label_names) {
    if (!IsValidLabelName(l)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": label name \"", l, "\" is not [a-zA-Z_][a-zA-Z0-9_]* or starts with __"));
    }
    if (!seen.insert(l).second) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", name, ": label \"", l, "\" appears twice"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<Family<T>*> Registry::Insert(std::unique_ptr<Family<T>> family) {
  Family<T>* raw = family.get();
  // The clash check and the insert under one lock: of two concurrent
  // registrations of a name exactly one wins, and no family is ever replaced
  // (pointers handed out stay valid).
  std::lock_guard<std::mutex> lk(mu_);
  const std::string& name = raw->name();
  if (!families_.try_emplace(name, std::move(family)).second) {
    return absl::AlreadyExistsError(absl::StrCat("metric ", name, " is already registered"));
  }
  return raw;
}

absl::StatusOr<Family<Counter>*> Registry::AddCounter(const std::string& name, const std::string& help,
                                                      const std::vector<std::string>& label_names) {
  if (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0) {
    return absl::InvalidArgumentError(absl::StrCat("counter ", name, ": counter names end in _total"));
  }
  if (absl::Status s = CheckNew(name, help, label_names); !s.ok()) return s;
  return Insert(std::make_unique<Family<Counter>>(name, help, label_names));
}

absl::StatusOr<Family<Gauge>*> Registry::AddGauge(const std::string& name, const std::string& help,
                                                  const std::vector<std::string>& label_names) {
  if (absl::Status s = CheckNew(name, help, label_names); !s.ok()) return s;
  return Insert(std::make_unique<Family<Gauge>>(name, help, label_names));
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogram(const std::string& name, const std::string& help,
                                                          const std::vector<std::string>& label_names,
                                                          std::vector<double> upper_bounds) {
  if (!upper_bounds.empty() && std::isinf(upper_bounds.back()) && upper_bounds.back() > 0) upper_bounds.pop_back();
  if (upper_bounds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("histogram ", name, ": needs at least one finite bucket bound"));
  }
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && !(upper_bounds[i] > upper_bounds[i - 1]))) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram ", name, ": bucket bounds must be finite and strictly increasing (bound ", i, ")"));
    }
  }
  for (const std::string& l : label_names) {
    if (l == "le") return absl::InvalidArgumentError(absl::StrCat("histogram ", name, ": label \"le\" is reserved"));
  }
  if (absl::Status s = CheckNew(name, help, label_names); !s.ok()) return s;
  auto family = std::make_unique<Family<Histogram>>(name, help, label_names);
  family->bounds_ = std::make_shared<const std::vector<double>>(std::move(upper_bounds));
  return Insert(std::move(family));
}

void Registry::AddCollectHook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lk(mu_);
  hooks_.push_back(std::move(hook));
}

std::string Registry::Render() const {
  std::lock_guard<std::mutex> render_lock(render_mu_);
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> lk(mu_);
    hooks = hooks_;
  }
  for (const auto& h : hooks) h();  // may update gauges: not under mu_
  std::string out;
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [name, family] : families_) family->Render(out);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) out.push_back(v);
  return out;
}

std::vector<double> LatencyBuckets() { return ExponentialBuckets(0.001, 2.0, 17); }

}  // namespace squeeze::metrics
