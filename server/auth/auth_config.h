// The coordinator's --auth-config: bearer tokens mapped to tenants, with
// per-tenant limits. YAML (yaml-cpp):
//
//   tenants:
//     - name: team-a                 # [a-z0-9][a-z0-9_.-]{0,63}
//       token_sha256:                # sha256 hex of each bearer token (never the token)
//         - 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//       max_upload_bytes: 1073741824 # optional; 0/absent = the coordinator's --max-upload-bytes
//       requests_per_second: 20      # optional; 0/absent = no rate limit
//       burst: 40                    # optional; absent = max(1, 2 x requests_per_second)
//
// Invariants of a parsed config: at least one tenant; names unique and valid;
// every digest is 64 lowercase hex and belongs to exactly one tenant; limits
// finite and >= 0; burst >= 1 when a rate is set. Anything else (unknown keys,
// a plaintext `token:` key, a token that is not a digest) is an
// InvalidArgument naming the source, the YAML path and the reason; nothing is
// half-loaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace squeeze::auth {

struct TenantConfig {
  std::string name;
  std::vector<std::string> token_sha256;  // lowercase hex, 64 chars each
  int64_t max_upload_bytes = 0;           // bytes; 0 = the server-wide cap
  double requests_per_second = 0;         // token refill rate; 0 = unlimited
  double burst = 0;                       // bucket capacity (requests); set when rate > 0
};

struct AuthConfig {
  std::vector<TenantConfig> tenants;

  // `source` names the text in errors (a file path).
  static absl::StatusOr<AuthConfig> Parse(const std::string& yaml_text, const std::string& source);
  // Reads and parses a file (at most 1 MiB).
  static absl::StatusOr<AuthConfig> Load(const std::string& path);
};

}  // namespace squeeze::auth
