#include "workers/engine/formats/linear_loaders.h"

#include <mutex>
#include <utility>

#include "absl/strings/match.h"

namespace squeeze {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, LinearLoader> by_prefix;
};

Registry& GetRegistry() {
  static Registry registry;
  return registry;
}

}  // namespace

void RegisterLinearLoader(const std::string& kind_prefix, LinearLoader loader) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.by_prefix[kind_prefix] = std::move(loader);
}

LinearLoader FindLinearLoader(const std::string& kind) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  const LinearLoader* best = nullptr;
  size_t best_len = 0;
  for (const auto& [prefix, loader] : r.by_prefix) {
    if (absl::StartsWith(kind, prefix) && (best == nullptr || prefix.size() > best_len)) {
      best = &loader;
      best_len = prefix.size();
    }
  }
  return best ? *best : nullptr;
}

}  // namespace squeeze
