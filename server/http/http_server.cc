#include "server/http/http_server.h"

#include <microhttpd.h>
#include <unistd.h>

#include <algorithm>

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/http/listen_address.h"

namespace squeeze::http {

std::string Request::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

std::string Request::Query(absl::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return "";
}

Response Response::Text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

void Router::Handle(const std::string& method, const std::string& path, Handler handler) {
  routes_[path][method] = std::move(handler);
}

Response Router::Route(const Request& request) const {
  auto p = routes_.find(request.path);
  if (p == routes_.end()) return Response::Text(404, absl::StrCat("no such path: ", request.path, "\n"));
  const auto& methods = p->second;
  auto m = methods.find(request.method);
  if (m == methods.end() && request.method == "HEAD") m = methods.find("GET");
  if (m != methods.end()) return m->second(request);
  std::vector<std::string> allow;
  for (const auto& [name, h] : methods) {
    allow.push_back(name);
    if (name == "GET" && !methods.count("HEAD")) allow.push_back("HEAD");
  }
  std::sort(allow.begin(), allow.end());
  Response r = Response::Text(405, absl::StrCat("method ", request.method, " is not allowed on ", request.path,
                                                " (allowed: ", absl::StrJoin(allow, ", "), ")\n"));
  r.headers.emplace_back("Allow", absl::StrJoin(allow, ", "));
  return r;
}

// Per-request state between libmicrohttpd's calls of the access handler.
struct Server::Pending {
  std::string body;
  bool too_large = false;
  bool answered = false;  // a response was queued already (early 413)
};

namespace {

// A streamed body as libmicrohttpd's content reader: hands out the current
// piece, asks the BodyStream for the next one when it is used up.
struct StreamState {
  BodyStream next;
  std::string piece;
  size_t offset = 0;
};

ssize_t ReadStream(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
  auto* s = static_cast<StreamState*>(cls);
  while (s->offset >= s->piece.size()) {
    absl::StatusOr<std::optional<std::string>> next = s->next();
    if (!next.ok()) {
      std::fprintf(stderr, "http: streamed body ended with an error: %s\n", next.status().ToString().c_str());
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (!next->has_value()) return MHD_CONTENT_READER_END_OF_STREAM;
    s->piece = std::move(**next);  // an empty piece: ask again (0 would mean "try later")
    s->offset = 0;
  }
  const size_t n = std::min(max, s->piece.size() - s->offset);
  std::memcpy(buf, s->piece.data() + s->offset, n);
  s->offset += n;
  return static_cast<ssize_t>(n);
}

void FreeStream(void* cls) { delete static_cast<StreamState*>(cls); }

MHD_Result Queue(MHD_Connection* c, Response r) {
  MHD_Response* resp;
  if (r.stream) {
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, &ReadStream,
                                             new StreamState{std::move(r.stream), "", 0}, &FreeStream);
  } else {
    resp = MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
  }
  if (resp == nullptr) return MHD_NO;
  for (const auto& [k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
  const MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return ok;
}

MHD_Result CollectHeader(void* cls, MHD_ValueKind, const char* key, const char* value) {
  static_cast<KeyValues*>(cls)->emplace_back(absl::AsciiStrToLower(key), value ? value : "");
  return MHD_YES;
}

MHD_Result CollectQuery(void* cls, MHD_ValueKind, const char* key, const char* value) {
  static_cast<KeyValues*>(cls)->emplace_back(key, value ? value : "");
  return MHD_YES;
}

Response TooLarge(int64_t limit) {
  return Response::Text(413, absl::StrCat("request body larger than the limit of ", limit, " bytes\n"));
}

MHD_Result OnRequest(void* cls, MHD_Connection* c, const char* url, const char* method, const char* version,
                     const char* upload_data, size_t* upload_size, void** con_cls) {
  const Server* self = static_cast<const Server*>(cls);
  const int64_t limit = self->options().max_body_bytes;
  auto* p = static_cast<Server::Pending*>(*con_cls);
  if (p == nullptr) {  // headers are in; the body (if any) comes in later calls
    p = new Server::Pending;
    *con_cls = p;
    int64_t declared = 0;
    const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != nullptr && absl::SimpleAtoi(cl, &declared) && declared > limit) {
      p->too_large = p->answered = true;  // answer before reading the body
      return Queue(c, TooLarge(limit));
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (!p->too_large) {
      if (static_cast<int64_t>(p->body.size() + *upload_size) > limit) {
        p->too_large = true;
        std::string().swap(p->body);
      } else {
        p->body.append(upload_data, *upload_size);
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (p->answered) return MHD_YES;
  p->answered = true;
  if (p->too_large) return Queue(c, TooLarge(limit));
  // RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400.
  if (std::strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST) == nullptr) {
    Response r = Response::Text(400, "HTTP/1.1 request without a Host header\n");
    r.headers.emplace_back("Connection", "close");
    return Queue(c, std::move(r));
  }
  Request req;
  req.method = method;
  req.path = url;
  req.version = version;
  req.body = std::move(p->body);
  if (const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)) {
    req.socket_fd = info->connect_fd;
  }
  MHD_get_connection_values(c, MHD_HEADER_KIND, &CollectHeader, &req.headers);
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &CollectQuery, &req.query);
  return Queue(c, self->router().Route(req));
}

void OnCompleted(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<Server::Pending*>(*con_cls);
  *con_cls = nullptr;
}

void LogError(void* cls, const char* fmt, va_list ap) {
  std::fprintf(stderr, "%s: ", static_cast<const Server*>(cls)->options().name.c_str());
  std::vfprintf(stderr, fmt, ap);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Router router) {
  if (options.max_body_bytes < 0 || options.max_connections <= 0 || options.idle_timeout_s <= 0) {
    return absl::InvalidArgumentError("http server: limits must be positive");
  }
  const bool tls = !options.tls_cert_pem.empty() || !options.tls_key_pem.empty();
  if (tls && (options.tls_cert_pem.empty() || options.tls_key_pem.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(options.name, ": TLS needs both a certificate and a key"));
  }
  if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    return absl::FailedPreconditionError(
        absl::StrCat(options.name, ": this libmicrohttpd was built without TLS support"));
  }
  absl::StatusOr<Listener> listener = ListenTcp(options.listen);
  if (!listener.ok()) return listener.status();
  std::unique_ptr<Server> s(new Server(options, std::move(router)));
  s->port_ = listener->port;
  const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                         MHD_USE_ITC | MHD_USE_ERROR_LOG | (tls ? static_cast<unsigned>(MHD_USE_TLS) : 0u);
  // The PEM strings live in s->options_ for the daemon's lifetime (MHD keeps
  // the pointers). Without TLS the HTTPS options are skipped (MHD_OPTION_END
  // ends the list early there).
  MHD_OptionItem tls_options[] = {
      {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, const_cast<char*>(s->options_.tls_cert_pem.c_str())},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(s->options_.tls_key_pem.c_str())},
      {MHD_OPTION_END, 0, nullptr}};
  s->daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &OnRequest, s.get(),                         //
                                MHD_OPTION_EXTERNAL_LOGGER, &LogError, s.get(),  // first: it covers the rest
                                MHD_OPTION_LISTEN_SOCKET, listener->fd,                                   //
                                MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options.max_connections),  //
                                MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(options.idle_timeout_s),  //
                                MHD_OPTION_NOTIFY_COMPLETED, &OnCompleted, s.get(),                      //
                                MHD_OPTION_ARRAY, tls_options,                                            //
                                MHD_OPTION_END);
  if (s->daemon_ == nullptr) {
    ::close(listener->fd);
    return absl::InternalError(absl::StrCat("http server: libmicrohttpd failed to start on ", options.listen));
  }
  return s;
}

void Server::Stop() {
  if (daemon_ != nullptr) {
    MHD_stop_daemon(daemon_);  // closes the listening socket too
    daemon_ = nullptr;
  }
}

Server::~Server() { Stop(); }

}  // namespace squeeze::http
