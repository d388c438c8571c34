#include "workers/worker/capabilities.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#include "absl/strings/str_format.h"

namespace squeeze::worker {

namespace {

// NVIDIA GPUs as nvidia-smi reports them ("name, memory MiB" per line); none
// when the tool is absent or fails. $SQUEEZE_WORKER_NO_GPUS=1 hides them.
std::vector<HostCapabilities::Gpu> DetectGpus() {
  std::vector<HostCapabilities::Gpu> gpus;
  if (const char* off = std::getenv("SQUEEZE_WORKER_NO_GPUS"); off && std::string(off) == "1") return gpus;
  std::unique_ptr<FILE, int (*)(FILE*)> p(
      ::popen("nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null", "r"), ::pclose);
  if (!p) return gpus;
  char line[512];
  while (std::fgets(line, sizeof(line), p.get())) {
    std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(line), ',');
    int64_t mib = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(absl::StripAsciiWhitespace(parts[1]), &mib)) continue;
    gpus.push_back({std::string(absl::StripAsciiWhitespace(parts[0])), mib << 20});
  }
  return gpus;
}

}  // namespace

HostCapabilities DetectCapabilities(const std::string& work_dir) {
  HostCapabilities c;
  c.cpu_cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  c.avx2 = __builtin_cpu_supports("avx2");
  c.avx512f = __builtin_cpu_supports("avx512f");
  c.avx512_vnni = __builtin_cpu_supports("avx512vnni");
#endif
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) c.ram_bytes = static_cast<int64_t>(pages) * page;
  struct statvfs vfs;
  if (::statvfs(work_dir.c_str(), &vfs) == 0) {
    c.disk_free_bytes = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
  }
  c.gpus = DetectGpus();
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) == 0) c.hostname = host;
  return c;
}

std::string KeepGpusOnlyForCuda(const Device& run_device, HostCapabilities* caps) {
  if (run_device.is_cuda() || caps->gpus.empty()) return "";
  const std::string why =
      absl::StrFormat("%d GPU(s) listed by nvidia-smi not advertised: stages run on the cpu (%s)",
                      static_cast<int>(caps->gpus.size()), run_device.reason);
  caps->gpus.clear();
  return why;
}

std::string Describe(const HostCapabilities& c) {
  return absl::StrFormat("%d cores%s%s%s, %.1f GiB RAM, %.1f GiB free disk, %d GPUs", c.cpu_cores,
                         c.avx2 ? " avx2" : "", c.avx512f ? " avx512f" : "", c.avx512_vnni ? " avx512vnni" : "",
                         c.ram_bytes / 1073741824.0, c.disk_free_bytes / 1073741824.0,
                         static_cast<int>(c.gpus.size()));
}

}  // namespace squeeze::worker
