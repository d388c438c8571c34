// SHA-256 through OpenSSL's EVP interface; digests are lowercase hex (64 chars).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze::store {

// Incremental hasher. Not copyable; Final() may be called once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(absl::string_view bytes);
  std::string FinalHex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string Sha256Hex(absl::string_view bytes);
// Hashes a file by streaming it (1 MiB reads).
absl::StatusOr<std::string> Sha256File(const std::string& path);
// True when `s` is 64 lowercase hex characters.
bool IsSha256Hex(absl::string_view s);

}  // namespace squeeze::store
