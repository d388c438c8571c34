#include "server/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "workers/engine/core/status_macros.h"

namespace squeeze::metrics {
namespace {

double TimevalSeconds(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }

// Resident and virtual bytes from /proc/self/statm (pages); -1 when unreadable.
void MemoryBytes(double& resident, double& virt) {
  resident = virt = -1;
  std::ifstream in("/proc/self/statm");
  long long pages_virt = 0, pages_res = 0;
  if (in >> pages_virt >> pages_res) {
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    virt = pages_virt * page;
    resident = pages_res * page;
  }
}

int OpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the descriptor of the opendir itself
}

// Seconds since the epoch when this process started: boot time (/proc/stat
// btime) plus the process's start in clock ticks after boot (/proc/self/stat
// field 22); -1 when unreadable.
double StartTimeSeconds() {
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(line.substr(paren + 2));
  std::string f;
  for (int i = 3; i <= 22 && fields >> f; ++i) {
    if (i != 22) continue;
    std::ifstream proc_stat("/proc/stat");
    std::string key;
    long long btime = -1;
    while (proc_stat >> key) {
      if (key == "btime") {
        proc_stat >> btime;
        break;
      }
    }
    if (btime < 0) return -1;
    return static_cast<double>(btime) + std::stod(f) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  return -1;
}

}  // namespace

double ProcessCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return TimevalSeconds(ru.ru_utime) + TimevalSeconds(ru.ru_stime);
}

absl::Status AddProcessMetrics(Registry& registry) {
  SQ_ASSIGN_OR_RETURN(Family<Counter>* cpu,
                      registry.AddCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."));
  SQ_ASSIGN_OR_RETURN(Family<Gauge>* rss,
                      registry.AddGauge("process_resident_memory_bytes", "Resident memory size in bytes."));
  SQ_ASSIGN_OR_RETURN(Family<Gauge>* vsz,
                      registry.AddGauge("process_virtual_memory_bytes", "Virtual memory size in bytes."));
  SQ_ASSIGN_OR_RETURN(Family<Gauge>* fds, registry.AddGauge("process_open_fds", "Number of open file descriptors."));
  SQ_ASSIGN_OR_RETURN(Family<Gauge>* start,
                      registry.AddGauge("process_start_time_seconds",
                                        "Start time of the process since unix epoch in seconds."));
  double started = StartTimeSeconds();
  if (started < 0) {  // no /proc: the time of registration (program start) instead
    started = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  start->Get().Set(started);
  Counter* cpu_total = &cpu->Get();
  Gauge* rss_g = &rss->Get();
  Gauge* vsz_g = &vsz->Get();
  Gauge* fds_g = &fds->Get();
  registry.AddCollectHook([=] {
    // getrusage is monotonic: add what was spent since the last scrape.
    const double now = ProcessCpuSeconds();
    cpu_total->Increment(now - cpu_total->Value());
    double r, v;
    MemoryBytes(r, v);
    if (r >= 0) rss_g->Set(r);
    if (v >= 0) vsz_g->Set(v);
    if (int n = OpenFds(); n >= 0) fds_g->Set(n);
  });
  return absl::OkStatus();
}

}  // namespace squeeze::metrics
