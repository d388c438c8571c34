#include "server/grpcweb/gateway.h"

#include <poll.h>

#include <cstdio>
#include <optional>
#include <utility>

#include <google/protobuf/descriptor.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/grpcweb/grpc_web_text.h"
#include "server/grpcweb/static_files.h"
#include "server/grpcweb/upstream_call.h"

namespace squeeze::grpcweb {

namespace {

constexpr size_t kMaxMessageBytes = 16 << 20;  // proto/limits.h kMaxMessageBytes

// Headers that describe the HTTP exchange or the browser, not the call.
bool IsHttpOnlyHeader(absl::string_view name) {
  static constexpr absl::string_view kNames[] = {
      "host",         "content-type",    "content-length", "connection",    "keep-alive",
      "transfer-encoding", "te",         "upgrade",        "expect",        "accept",
      "accept-encoding", "accept-language", "accept-charset", "origin",     "referer",
      "user-agent",   "x-grpc-web",      "x-user-agent",   "cookie",        "pragma",
      "cache-control", "dnt",            "priority",       "via",           "forwarded"};
  for (absl::string_view n : kNames) {
    if (name == n) return true;
  }
  return absl::StartsWith(name, "sec-") || absl::StartsWith(name, "access-control-") ||
         absl::StartsWith(name, "proxy-") || absl::StartsWith(name, "grpc-") || absl::StartsWith(name, ":");
}

bool ValidMetadataKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

bool PrintableAscii(absl::string_view v) {
  for (char c : v) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  }
  return true;
}

bool IsBinaryKey(absl::string_view key) { return absl::EndsWith(key, "-bin"); }

// Server metadata that may be passed on to the browser (not transport-owned).
bool Forwardable(absl::string_view key) {
  return !key.empty() && !absl::StartsWith(key, "grpc-") && !absl::StartsWith(key, ":") && key != "content-type" &&
         key != "te" && key != "content-length" && key != "transfer-encoding" && key != "connection";
}

// The browser closed its side (or the socket failed). Data the client sent
// after its request would show as POLLIN only, which is not a hang-up. A
// client that half-closes (shutdown(SHUT_WR)) after its request counts as
// gone; browsers and HTTP libraries do not do that.
bool PeerHungUp(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

http::Response ErrorResponse(int http_status, grpc::StatusCode code, const std::string& message) {
  http::Response r = http::Response::Text(http_status, message + "\n");
  r.headers.emplace_back("grpc-status", absl::StrCat(static_cast<int>(code)));
  r.headers.emplace_back("grpc-message", PercentEncodeGrpcMessage(message));
  return r;
}

std::string TrailerFrameFor(const grpc::Status& status, const Metadata& trailing, Encoding encoding) {
  Metadata md;
  for (const auto& [k, v] : trailing) {
    if (!Forwardable(k)) continue;
    // Binary values are base64 in the trailer block; -text skips that extra
    // encoding (PROTOCOL-WEB.md, text-encoded streams, 3).
    md.emplace_back(k, IsBinaryKey(k) && encoding == Encoding::kBinary ? absl::Base64Escape(v) : v);
  }
  if (!status.error_details().empty()) {
    md.emplace_back("grpc-status-details-bin", encoding == Encoding::kBinary
                                                   ? absl::Base64Escape(status.error_details())
                                                   : status.error_details());
  }
  return EncodeTrailerFrame(static_cast<int>(status.error_code()), status.error_message(), md);
}

void AddInitialMetadata(const Metadata& md, http::KeyValues& headers) {
  for (const auto& [k, v] : md) {
    if (!Forwardable(k)) continue;
    headers.emplace_back(k, IsBinaryKey(k) ? absl::Base64Escape(v) : v);
  }
}

}  // namespace

Metadata MetadataFromHeaders(const http::KeyValues& headers) {
  Metadata md;
  for (const auto& [raw_name, value] : headers) {
    const std::string name = absl::AsciiStrToLower(raw_name);
    if (IsHttpOnlyHeader(name) || !ValidMetadataKey(name)) continue;
    if (IsBinaryKey(name)) {
      std::string bytes;
      if (!absl::Base64Unescape(value, &bytes)) continue;  // not base64: not a usable -bin value
      md.emplace_back(name, std::move(bytes));
    } else if (PrintableAscii(value)) {
      md.emplace_back(name, value);
    }
  }
  return md;
}

absl::StatusOr<std::chrono::nanoseconds> ParseGrpcTimeout(absl::string_view value) {
  if (value.size() < 2 || value.size() > 9) {
    return absl::InvalidArgumentError(absl::StrCat("grpc-timeout \"", value, "\": want 1-8 digits and a unit"));
  }
  int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat("grpc-timeout \"", value, "\": want 1-8 digits and a unit"));
    }
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  // 8 digits of hours overflow int64 nanoseconds (and the deadline after
  // now() + it): longer timeouts are clamped to 100 days, compared in the
  // unit given so that the comparison itself cannot overflow.
  constexpr hours kMaxTimeout(24 * 100);
  const auto clamped = [&](auto d) { return d > kMaxTimeout ? nanoseconds(kMaxTimeout) : duration_cast<nanoseconds>(d); };
  switch (value.back()) {
    case 'H': return clamped(hours(n));
    case 'M': return clamped(minutes(n));
    case 'S': return clamped(seconds(n));
    case 'm': return duration_cast<nanoseconds>(milliseconds(n));
    case 'u': return duration_cast<nanoseconds>(microseconds(n));
    case 'n': return nanoseconds(n);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("grpc-timeout \"", value, "\": unknown unit (want H, M, S, m, u or n)"));
  }
}

Gateway::Gateway(const GatewayOptions& options, CorsPolicy cors, std::shared_ptr<grpc::Channel> upstream)
    : options_(options), cors_(std::move(cors)), channel_(std::move(upstream)), stub_(channel_) {}

Gateway::~Gateway() { Stop(); }

void Gateway::Stop() {
  stopping_ = true;
  if (http_) http_->Stop();
}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(const GatewayOptions& options,
                                                        std::shared_ptr<grpc::Channel> upstream) {
  absl::StatusOr<CorsPolicy> cors = CorsPolicy::Parse(options.allowed_origins);
  if (!cors.ok()) return cors.status();
  if (absl::Status s = cors->SetHosts(options.allowed_hosts, !options.tls_cert_pem.empty()); !s.ok()) return s;
  std::unique_ptr<Gateway> g(new Gateway(options, *std::move(cors), std::move(upstream)));
  http::Router router;
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const std::string& name : options.services) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
    if (service == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("gRPC-web gateway: unknown service ", name));
    }
    for (int i = 0; i < service->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* m = service->method(i);
      Method method{absl::StrCat("/", service->full_name(), "/", m->name()), m->server_streaming()};
      Gateway* self = g.get();
      router.Handle("POST", method.path,
                    [self, method](const http::Request& r) { return self->HandleCall(method, r); });
      router.Handle("OPTIONS", method.path, [self](const http::Request& r) {
        if (!self->cors_.HostAllowed(r)) {
          return http::Response::Text(403, absl::StrCat("Host \"", r.Header("host"),
                                                        "\" is not allowed (coordinator flag --grpc-web-allow-host)\n"));
        }
        return self->cors_.Preflight(r);
      });
    }
  }
  if (!options.dashboard_dir.empty()) {
    if (absl::Status s = AddStaticFiles(router, options.dashboard_dir); !s.ok()) return s;
  }
  http::ServerOptions http_options;
  http_options.listen = options.listen;
  http_options.max_body_bytes = options.max_body_bytes;
  http_options.max_connections = options.max_connections;
  http_options.name = "grpc-web";
  http_options.tls_cert_pem = options.tls_cert_pem;
  http_options.tls_key_pem = options.tls_key_pem;
  absl::StatusOr<std::unique_ptr<http::Server>> server = http::Server::Start(http_options, std::move(router));
  if (!server.ok()) return server.status();
  g->http_ = *std::move(server);
  return g;
}

http::Response Gateway::HandleCall(const Method& method, const http::Request& request) {
  if (!cors_.HostAllowed(request)) {
    return ErrorResponse(403, grpc::StatusCode::PERMISSION_DENIED,
                         absl::StrCat("Host \"", request.Header("host"),
                                      "\" is not allowed (coordinator flag --grpc-web-allow-host)"));
  }
  if (!cors_.Allows(request)) {
    return ErrorResponse(403, grpc::StatusCode::PERMISSION_DENIED,
                         absl::StrCat("origin ", request.Header("origin"),
                                      " is not allowed (coordinator flag --grpc-web-allow-origin)"));
  }
  const std::string content_type = request.Header("content-type");
  absl::StatusOr<Encoding> encoding = ParseGrpcWebContentType(content_type);
  auto fail = [&](int http_status, grpc::StatusCode code, const std::string& message) {
    http::Response r = ErrorResponse(http_status, code, message);
    cors_.AddResponseHeaders(request, r.headers);
    return r;
  };
  if (!encoding.ok()) return fail(415, grpc::StatusCode::INVALID_ARGUMENT, std::string(encoding.status().message()));
  // The body is parsed in place (binary) or once decoded (-text); each
  // message is then copied once, into its frame, and handed to gRPC without
  // another copy (UpstreamCall::Send(&&)).
  std::string decoded_text;
  absl::string_view raw = request.body;
  if (*encoding == Encoding::kText) {
    absl::StatusOr<std::string> decoded = DecodeBase64Segments(request.body);
    if (!decoded.ok()) return fail(400, grpc::StatusCode::INVALID_ARGUMENT, std::string(decoded.status().message()));
    decoded_text = *std::move(decoded);
    raw = decoded_text;
  }
  absl::StatusOr<std::vector<Frame>> frames = ParseFrames(raw, kMaxMessageBytes);
  if (!frames.ok()) return fail(400, grpc::StatusCode::INVALID_ARGUMENT, std::string(frames.status().message()));
  std::vector<std::string> messages;
  for (Frame& f : *frames) {
    if (f.is_trailer()) return fail(400, grpc::StatusCode::INVALID_ARGUMENT, "a gRPC-web request has no trailer frames");
    messages.push_back(std::move(f.payload));
  }
  frames->clear();
  std::string().swap(decoded_text);
  std::optional<std::chrono::system_clock::time_point> deadline;
  if (const std::string t = request.Header("grpc-timeout"); !t.empty()) {
    absl::StatusOr<std::chrono::nanoseconds> timeout = ParseGrpcTimeout(t);
    if (!timeout.ok()) return fail(400, grpc::StatusCode::INVALID_ARGUMENT, std::string(timeout.status().message()));
    deadline = std::chrono::system_clock::now() +
               std::chrono::duration_cast<std::chrono::system_clock::duration>(*timeout);
  }

  const int fd = request.socket_fd;
  auto call = std::make_shared<UpstreamCall>(
      stub_, method.path, MetadataFromHeaders(request.headers), deadline,
      [this, fd] { return stopping_.load() || PeerHungUp(fd); }, options_.poll_interval);
  call->Send(std::move(messages));
  std::optional<std::string> first = call->Read();

  http::Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", ResponseContentType(content_type));
  cors_.AddResponseHeaders(request, r.headers);
  const Encoding enc = *encoding;
  auto encode = [enc](std::string piece) { return enc == Encoding::kText ? EncodeBase64(piece) : piece; };

  if (!method.server_streaming || !first.has_value()) {
    // Unary (or a stream that ended at once): one body with a Content-Length.
    std::string body;
    if (first) body += EncodeDataFrame(*first);
    while (std::optional<std::string> next = call->Read()) body += EncodeDataFrame(*next);
    const grpc::Status& status = call->Finish();
    AddInitialMetadata(call->InitialMetadata(), r.headers);
    body += TrailerFrameFor(status, call->TrailingMetadata(), enc);
    r.body = encode(std::move(body));
    return r;
  }

  AddInitialMetadata(call->InitialMetadata(), r.headers);
  struct StreamState {
    std::shared_ptr<UpstreamCall> call;
    std::optional<std::string> pending;
    bool done = false;
  };
  auto state = std::make_shared<StreamState>();
  state->call = call;
  state->pending = std::move(first);
  r.stream = [this, state, enc, encode]() -> absl::StatusOr<std::optional<std::string>> {
    if (state->done) return std::optional<std::string>();
    std::string piece;
    if (state->pending) {
      piece = EncodeDataFrame(*state->pending);
      state->pending.reset();
    } else if (std::optional<std::string> next = state->call->Read()) {
      piece = EncodeDataFrame(*next);
    } else {
      const grpc::Status& status = state->call->Finish();
      if (state->call->cancelled() && !stopping_.load()) {
        // The browser went away: nobody to send a trailer to.
        return absl::CancelledError("gRPC-web client hung up; upstream call cancelled");
      }
      piece = TrailerFrameFor(status, state->call->TrailingMetadata(), enc);
      state->done = true;
    }
    return std::optional<std::string>(encode(std::move(piece)));
  };
  return r;
}

}  // namespace squeeze::grpcweb
