#include "workers/engine/core/module_regex.h"

#include <re2/re2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace squeeze {

absl::StatusOr<ModuleRegex> ModuleRegex::Compile(absl::string_view pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);  // bytes for the compiled program; huge patterns fail cleanly
  auto re = std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) return absl::InvalidArgumentError(re->error());
  ModuleRegex m;
  m.re_ = std::move(re);
  return m;
}

bool ModuleRegex::MatchesFromStart(absl::string_view name) const {
  const re2::StringPiece text(name.data(), name.size());
  return re_->Match(text, 0, text.size(), RE2::ANCHOR_START, nullptr, 0);
}

}  // namespace squeeze
