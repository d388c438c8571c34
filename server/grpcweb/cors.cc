#include "server/grpcweb/cors.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace squeeze::grpcweb {

namespace {

constexpr char kExposeHeaders[] = "grpc-status, grpc-message, grpc-status-details-bin";

bool ValidOrigin(absl::string_view o) {
  const size_t sep = o.find("://");
  if (sep == absl::string_view::npos || sep == 0) return false;
  for (char c : o.substr(0, sep)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
  }
  absl::string_view rest = o.substr(sep + 3);
  if (rest.empty()) return false;
  for (char c : rest) {
    if (c == '/' || c == '?' || c == '#' || c == '@' || absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A header-name list as in Access-Control-Request-Headers: tokens and commas.
bool ValidHeaderList(absl::string_view list) {
  for (char c : list) {
    const auto u = static_cast<unsigned char>(c);
    if (!(absl::ascii_isalnum(u) || c == '-' || c == '_' || c == '.' || c == ',' || c == ' ')) return false;
  }
  return true;
}

std::string NormalizeDashes(absl::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

}  // namespace

absl::StatusOr<CorsPolicy> CorsPolicy::Parse(const std::vector<std::string>& values) {
  CorsPolicy p;
  for (const std::string& value : values) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      absl::string_view o = absl::StripAsciiWhitespace(part);
      absl::ConsumeSuffix(&o, "/");
      if (o != "*" && !ValidOrigin(o)) {
        return absl::InvalidArgumentError(absl::StrCat("--grpc-web-allow-origin: \"", part,
                                                       "\" is not an origin (want scheme://host[:port] or *)"));
      }
      p.origins_.push_back(absl::AsciiStrToLower(o));
    }
  }
  return p;
}

bool CorsPolicy::Listed(absl::string_view origin) const {
  const std::string o = absl::AsciiStrToLower(origin);
  for (const std::string& allowed : origins_) {
    if (allowed == "*" || allowed == o) return true;
  }
  return false;
}

bool CorsPolicy::NamedExactly(absl::string_view origin) const {
  const std::string o = absl::AsciiStrToLower(origin);
  for (const std::string& allowed : origins_) {
    if (allowed == o) return true;
  }
  return false;
}

absl::Status CorsPolicy::SetHosts(const std::vector<std::string>& hosts, bool https) {
  scheme_ = https ? "https" : "http";
  hosts_.clear();
  for (const std::string& value : hosts) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      const absl::string_view h = absl::StripAsciiWhitespace(part);
      bool ok = !h.empty();
      for (char c : h) {
        const auto u = static_cast<unsigned char>(c);
        if (!(absl::ascii_isalnum(u) || c == '-' || c == '.' || c == ':' || c == '[' || c == ']')) ok = false;
      }
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat("--grpc-web-allow-host: \"", part, "\" is not a host or host:port"));
      }
      hosts_.push_back(absl::AsciiStrToLower(h));
    }
  }
  return absl::OkStatus();
}

bool CorsPolicy::HostAllowed(const http::Request& request) const {
  if (hosts_.empty()) return true;
  const std::string host = absl::AsciiStrToLower(request.Header("host"));
  for (const std::string& h : hosts_) {
    if (h == host) return true;
  }
  return false;
}

bool CorsPolicy::SameOrigin(const http::Request& request, absl::string_view origin) const {
  // Host is chosen by whoever resolved the name: only a listed Host makes
  // Origin == scheme://Host mean "the dashboard served from this port".
  const std::string host = request.Header("host");
  return !host.empty() && HostAllowed(request) &&
         absl::EqualsIgnoreCase(origin, absl::StrCat(scheme_, "://", host));
}

bool CorsPolicy::Allows(const http::Request& request) const {
  const std::string origin = request.Header("origin");
  return origin.empty() || SameOrigin(request, origin) || Listed(origin);
}

void CorsPolicy::AddResponseHeaders(const http::Request& request, http::KeyValues& headers) const {
  const std::string origin = request.Header("origin");
  if (origin.empty() || SameOrigin(request, origin) || !Listed(origin)) return;
  headers.emplace_back("Access-Control-Allow-Origin", origin);
  if (NamedExactly(origin)) headers.emplace_back("Access-Control-Allow-Credentials", "true");
  headers.emplace_back("Access-Control-Expose-Headers", kExposeHeaders);
  headers.emplace_back("Vary", "Origin");
}

http::Response CorsPolicy::Preflight(const http::Request& request) const {
  const std::string origin = request.Header("origin");
  if (origin.empty()) return http::Response::Text(403, "CORS preflight without an Origin header\n");
  if (!SameOrigin(request, origin) && !Listed(origin)) {
    return http::Response::Text(
        403, absl::StrCat("origin ", origin, " is not allowed (coordinator flag --grpc-web-allow-origin)\n"));
  }
  const std::string method = request.Header("access-control-request-method");
  if (method != "POST") {
    return http::Response::Text(403, absl::StrCat("CORS preflight for method \"", method,
                                                  "\": gRPC-web allows POST only\n"));
  }
  const std::string wanted = request.Header("access-control-request-headers");
  if (!ValidHeaderList(wanted)) return http::Response::Text(403, "malformed Access-Control-Request-Headers\n");
  http::Response r;
  r.status = 204;
  r.headers.emplace_back("Access-Control-Allow-Origin", origin);
  if (NamedExactly(origin)) r.headers.emplace_back("Access-Control-Allow-Credentials", "true");
  r.headers.emplace_back("Access-Control-Allow-Methods", "POST, OPTIONS");
  if (!wanted.empty()) r.headers.emplace_back("Access-Control-Allow-Headers", wanted);
  r.headers.emplace_back("Access-Control-Expose-Headers", kExposeHeaders);
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  r.headers.emplace_back("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  return r;
}

std::vector<std::string> RepeatedFlagValues(const std::vector<std::string>& args, absl::string_view name) {
  std::vector<std::string> out;
  const std::string want = NormalizeDashes(name);
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view a = args[i];
    if (a == "--") break;
    if (!absl::ConsumePrefix(&a, "--")) continue;
    const size_t eq = a.find('=');
    if (NormalizeDashes(a.substr(0, eq)) != want) continue;
    if (eq != absl::string_view::npos) {
      out.emplace_back(a.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      out.push_back(args[++i]);
    }
  }
  return out;
}

}  // namespace squeeze::grpcweb
