// Small helpers shared by the benchmark programs of tests/bench: clocks,
// environment knobs, the process's memory figures from /proc/self/status,
// and best-of-k timing of work that alternates with its baselines.
// Header-only; no dependency beyond the standard library and Abseil.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"

namespace squeeze::bench {

using Clock = std::chrono::steady_clock;

// Wall-clock seconds since t0.
inline double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Process CPU seconds (all threads). A thread pool's idle threads block, so
// the difference over a region is the CPU time its work really got: on a
// machine shared with other jobs it discounts the time slices it lost.
inline double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The integer value of environment variable `name`, `def` when unset or empty.
inline int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : def;
}

// A line of /proc/self/status in MiB, e.g. key "VmRSS:" (current resident
// set) or "VmHWM:" (its peak); -1 when the line is missing.
inline double StatusMiB(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = key;
  while (std::getline(in, line)) {
    if (line.rfind(k, 0) == 0) return std::stod(line.substr(k.size())) / 1024.0;  // kB
  }
  return -1.0;
}

// Peak resident set (VmHWM) in MiB; -1 when unknown.
inline double PeakRssMiB() { return StatusMiB("VmHWM:"); }

// Resets VmHWM to the current RSS (/proc/self/clear_refs 5); false when the
// kernel does not allow it (peaks are then cumulative).
inline bool ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// The `RATIO <name> <value>` lines a benchmark program prints after its runs
// (ours / baseline, higher is better; scripts/bench.sh reads them), in the
// order first added.
inline std::vector<std::pair<std::string, double>>& Ratios() {
  static auto* r = new std::vector<std::pair<std::string, double>>;
  return *r;
}
// Sets a RATIO line. Google Benchmark calls a benchmark more than once (a
// short estimation run first): a name added again keeps its place and takes
// the last, measured, value.
inline void AddRatio(const std::string& name, double v) {
  for (auto& [n, value] : Ratios()) {
    if (n == name) {
      value = v;
      return;
    }
  }
  Ratios().emplace_back(name, v);
}
// Prints every RATIO line, value to 3 decimals.
inline void PrintRatios() {
  for (const auto& [name, v] : Ratios()) std::printf("RATIO %s %.3f\n", name.c_str(), v);
}

// Median of a non-empty list of timings.
inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The fastest of repeated timings of one piece of work, in seconds, on the
// wall clock and on process CPU time (each minimum kept on its own).
struct BestTime {
  double wall = 1e30;
  double cpu = 1e30;

  // Runs `work` once and keeps its times where they are faster.
  void Time(absl::FunctionRef<void()> work) {
    const auto t0 = Clock::now();
    const double c0 = ProcessCpuSeconds();
    work();
    wall = std::min(wall, Since(t0));
    cpu = std::min(cpu, ProcessCpuSeconds() - c0);
  }
};

// One entry of AlternateBestOf: the work and where its fastest round goes.
struct TimedWork {
  BestTime* best;
  absl::FunctionRef<void()> work;
};

// Runs `rounds` rounds; each round runs every entry's work once, in the
// order given, so that a burst of load from other processes hits the
// measured work and its baselines (e.g. a memory copy) alike. Each entry's
// BestTime keeps its fastest round. Ratios of the kept times compare the
// entries.
inline void AlternateBestOf(int rounds, std::initializer_list<TimedWork> entries) {
  for (int r = 0; r < rounds; ++r) {
    for (const TimedWork& e : entries) e.best->Time(e.work);
  }
}

}  // namespace squeeze::bench
