#include "server/auth/auth_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "server/objectstore/sha256.h"

namespace squeeze::auth {
namespace {

constexpr int64_t kMaxConfigBytes = 1 << 20;

bool ValidTenantName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return false;
  }
  return true;
}

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  absl::Status Error(const std::string& path, const std::string& why) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", path, ": ", why));
  }

  // A non-negative finite number at `path`.
  absl::StatusOr<double> Number(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) return Error(path, "must be a number");
    double v = 0;
    try {
      v = n.as<double>();
    } catch (const YAML::Exception&) {
      return Error(path, absl::StrCat("\"", n.Scalar(), "\" is not a number"));
    }
    if (!std::isfinite(v) || v < 0) return Error(path, "must be a finite number >= 0");
    return v;
  }

  absl::StatusOr<TenantConfig> Tenant(const YAML::Node& t, const std::string& path) const {
    if (!t.IsMap()) return Error(path, "must be a mapping with name and token_sha256");
    TenantConfig out;
    bool has_burst = false;
    for (const auto& kv : t) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      const std::string kp = absl::StrCat(path, ".", key);
      const YAML::Node& v = kv.second;
      if (key == "name") {
        if (!v.IsScalar() || !ValidTenantName(v.Scalar())) {
          return Error(kp, "must match [a-z0-9][a-z0-9_.-]{0,63}");
        }
        out.name = v.Scalar();
      } else if (key == "token_sha256") {
        if (!v.IsSequence() || v.size() == 0) return Error(kp, "must be a non-empty list of sha256 hex digests");
        for (size_t i = 0; i < v.size(); ++i) {
          const std::string ip = absl::StrCat(kp, "[", i, "]");
          if (!v[i].IsScalar()) return Error(ip, "must be a string");
          const std::string d = v[i].Scalar();
          if (!store::IsSha256Hex(d)) {
            // Never echo the value: it may be a plaintext token pasted by mistake.
            return Error(ip, absl::StrCat("not a sha256 digest (64 lowercase hex chars, got ", d.size(),
                                          " chars); store sha256(token), e.g. printf %s TOKEN | sha256sum"));
          }
          out.token_sha256.push_back(d);
        }
      } else if (key == "token" || key == "tokens") {
        return Error(kp, "plaintext tokens are not accepted; list their sha256 digests under token_sha256");
      } else if (key == "max_upload_bytes") {
        absl::StatusOr<double> n = Number(v, kp);
        if (!n.ok()) return n.status();
        if (*n > 9.0e18 || *n != std::floor(*n)) return Error(kp, "must be a whole number of bytes below 9e18");
        out.max_upload_bytes = static_cast<int64_t>(*n);
      } else if (key == "requests_per_second") {
        absl::StatusOr<double> n = Number(v, kp);
        if (!n.ok()) return n.status();
        if (*n > 1e9) return Error(kp, "must be <= 1e9");
        // Below one request per 1000 s the bucket's wait (1 / rate, in ms)
        // stops fitting the int64 retry-after; 0 means no limit.
        if (*n != 0 && *n < 1e-3) return Error(kp, "must be 0 (no limit) or at least 0.001");
        out.requests_per_second = *n;
      } else if (key == "burst") {
        absl::StatusOr<double> n = Number(v, kp);
        if (!n.ok()) return n.status();
        if (*n < 1 || *n > 1e9) return Error(kp, "must be between 1 and 1e9 requests");
        out.burst = *n;
        has_burst = true;
      } else {
        return Error(kp, "unknown key (allowed: name, token_sha256, max_upload_bytes, requests_per_second, burst)");
      }
    }
    if (out.name.empty()) return Error(path, "name is required");
    if (out.token_sha256.empty()) return Error(path, "token_sha256 is required");
    if (has_burst && out.requests_per_second == 0) return Error(path + ".burst", "needs requests_per_second > 0");
    if (out.requests_per_second > 0 && !has_burst) out.burst = std::max(1.0, 2 * out.requests_per_second);
    return out;
  }

 private:
  std::string source_;
};

}  // namespace

absl::StatusOr<AuthConfig> AuthConfig::Parse(const std::string& yaml_text, const std::string& source) {
  Parser p(source);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) return p.Error("(top level)", "must be a mapping with a tenants list");
  AuthConfig out;
  std::set<std::string> names, digests;
  for (const auto& kv : root) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
    if (key != "tenants") return p.Error(key, "unknown key (allowed: tenants)");
    const YAML::Node& list = kv.second;
    if (!list.IsSequence() || list.size() == 0) return p.Error("tenants", "must be a non-empty list");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = absl::StrCat("tenants[", i, "]");
      absl::StatusOr<TenantConfig> t = p.Tenant(list[i], path);
      if (!t.ok()) return t.status();
      if (!names.insert(t->name).second) return p.Error(path + ".name", "tenant \"" + t->name + "\" listed twice");
      for (const std::string& d : t->token_sha256) {
        if (!digests.insert(d).second) {
          return p.Error(path + ".token_sha256", "a digest appears twice (each token maps to one tenant)");
        }
      }
      out.tenants.push_back(*std::move(t));
    }
  }
  if (out.tenants.empty()) return p.Error("tenants", "is required");
  return out;
}

absl::StatusOr<AuthConfig> AuthConfig::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the auth config"));
  std::string text;
  text.resize(static_cast<size_t>(kMaxConfigBytes) + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<int64_t>(text.size()) > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": larger than 1 MiB; not an auth config"));
  }
  return Parse(text, path);
}

}  // namespace squeeze::auth
