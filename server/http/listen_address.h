// Listening sockets from "host:port" addresses, as the --listen flags take
// them: "127.0.0.1:9100", "[::1]:9100", "localhost:0", ":9100" (all
// interfaces). Port 0 lets the kernel pick a free one.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze::http {

struct HostPort {
  std::string host;  // "" = every interface
  int port = 0;
};

// InvalidArgument naming `addr` when it is not host:port with a port in 0..65535.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view addr);

struct Listener {
  int fd = -1;    // bound, listening, non-blocking, close-on-exec
  int port = 0;   // the port actually bound
};
// Binds the first address `addr` resolves to that accepts the bind.
absl::StatusOr<Listener> ListenTcp(absl::string_view addr, int backlog = 128);

}  // namespace squeeze::http
