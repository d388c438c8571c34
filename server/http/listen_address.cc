#include "server/http/listen_address.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace squeeze::http {

absl::StatusOr<HostPort> ParseHostPort(absl::string_view addr) {
  const auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("listen address \"", addr, "\": ", why));
  };
  HostPort out;
  absl::string_view port_text;
  if (!addr.empty() && addr[0] == '[') {
    const size_t close = addr.find(']');
    if (close == absl::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return bad("expected [ipv6]:port");
    }
    out.host = std::string(addr.substr(1, close - 1));
    port_text = addr.substr(close + 2);
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == absl::string_view::npos) return bad("expected host:port");
    out.host = std::string(addr.substr(0, colon));
    if (out.host.find(':') != std::string::npos) return bad("an IPv6 host needs brackets: [::1]:port");
    port_text = addr.substr(colon + 1);
  }
  int port = -1;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return bad("port must be a number in 0..65535");
  }
  out.port = port;
  return out;
}

absl::StatusOr<Listener> ListenTcp(absl::string_view addr, int backlog) {
  auto hp = ParseHostPort(addr);
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp->port);
  const int rc = ::getaddrinfo(hp->host.empty() ? nullptr : hp->host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("listen address \"", addr, "\": ", ::gai_strerror(rc)));
  }
  std::string last_error = "no address";
  Listener out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
      last_error = std::strerror(errno);
      ::close(fd);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    out.fd = fd;
    out.port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                           : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    break;
  }
  ::freeaddrinfo(res);
  if (out.fd < 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", addr, ": ", last_error));
  return out;
}

}  // namespace squeeze::http
