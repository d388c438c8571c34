// The HTTP server on a real loopback socket, spoken to with raw bytes so that
// keep-alive, malformed requests and chunked bodies are seen exactly as sent.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/http/listen_address.h"
#include "server/http/metrics_endpoint.h"
#include "server/metrics/registry.h"

namespace squeeze::http {
namespace {

// A client connection with a receive timeout (a hang fails the test, not CI).
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~Conn() { ::close(fd_); }
  bool connected() const { return connected_; }
  void Send(const std::string& s) { ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), (ssize_t)s.size()); }
  // Reads one response: headers, then Content-Length bytes or chunks up to the
  // terminating 0 chunk, or until close when neither is given.
  std::string ReadResponse() {
    while (buf_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill()) return Take(buf_.size());
    }
    const size_t head_end = buf_.find("\r\n\r\n") + 4;
    const std::string head = buf_.substr(0, head_end);
    const size_t cl = Lower(head).find("content-length: ");
    if (head.rfind("HTTP/1.1 1", 0) == 0) return Take(head_end);  // 1xx has no body
    if (cl != std::string::npos) {
      const size_t n = std::stoul(head.substr(cl + 16));
      while (buf_.size() < head_end + n) {
        if (!Fill()) break;
      }
      return Take(std::min(buf_.size(), head_end + n));
    }
    if (Lower(head).find("transfer-encoding: chunked") != std::string::npos) {
      while (buf_.find("\r\n0\r\n\r\n", head_end - 2) == std::string::npos) {
        if (!Fill()) return Take(buf_.size());
      }
      return Take(buf_.find("\r\n0\r\n\r\n", head_end - 2) + 7);
    }
    while (Fill()) {
    }
    return Take(buf_.size());
  }
  // True when the server closed the connection (read returns 0).
  bool ClosedByPeer() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  bool Fill() {
    char tmp[4096];
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, n);
    return true;
  }
  std::string Take(size_t n) {
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }
  int fd_;
  bool connected_ = false;
  std::string buf_;
};

std::string Status(const std::string& response) { return response.substr(0, response.find("\r\n")); }
std::string Body(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Handle("GET", "/hello", [](const Request& r) {
      return Response::Text(200, absl::StrCat("hello ", r.Query("name"), " ua=", r.Header("user-agent")));
    });
    router_.Handle("POST", "/echo", [](const Request& r) {
      Response out = Response::Text(201, r.body);
      out.headers.emplace_back("X-Method", r.method);
      return out;
    });
    router_.Handle("GET", "/stream", [](const Request&) {
      auto n = std::make_shared<int>(0);
      Response r;
      r.headers.emplace_back("Content-Type", "text/plain");
      r.stream = [n]() -> absl::StatusOr<std::optional<std::string>> {
        if (*n == 3) return std::optional<std::string>();
        return std::optional<std::string>(absl::StrCat("piece", (*n)++, ";"));
      };
      return r;
    });
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.max_body_bytes = 1000;
    auto s = Server::Start(o, router_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    ASSERT_GT(server_->port(), 0);
  }
  Router router_;
  std::unique_ptr<Server> server_;
};

TEST_F(HttpServerTest, GetWithQueryAndHeaders) {
  Conn c(server_->port());
  ASSERT_TRUE(c.connected());
  c.Send("GET /hello?name=w%20x HTTP/1.1\r\nHost: t\r\nUser-Agent: probe/1\r\n\r\n");
  const std::string r = c.ReadResponse();
  EXPECT_EQ(Status(r), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(r.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos) << r;
  EXPECT_EQ(Body(r), "hello w x ua=probe/1");
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Conn c(server_->port());
  for (int i = 0; i < 3; ++i) {
    c.Send(absl::StrCat("GET /hello?name=", i, " HTTP/1.1\r\nHost: t\r\n\r\n"));
    const std::string r = c.ReadResponse();
    EXPECT_EQ(Status(r), "HTTP/1.1 200 OK") << r;
    EXPECT_EQ(Body(r), absl::StrCat("hello ", i, " ua="));
  }
  // Pipelined: two requests in one write, two responses in order.
  c.Send("GET /hello?name=a HTTP/1.1\r\nHost: t\r\n\r\nGET /hello?name=b HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(Body(c.ReadResponse()), "hello a ua=");
  EXPECT_EQ(Body(c.ReadResponse()), "hello b ua=");
  // Connection: close is honoured.
  c.Send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(Status(c.ReadResponse()), "HTTP/1.1 200 OK");
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(HttpServerTest, PostBodyReachesTheHandler) {
  Conn c(server_->port());
  c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello\nworld");
  std::string r = c.ReadResponse();
  EXPECT_EQ(Status(r), "HTTP/1.1 201 Created") << r;
  EXPECT_NE(r.find("X-Method: POST\r\n"), std::string::npos);
  EXPECT_EQ(Body(r), "hello\nworld");
  // A chunked request body is reassembled.
  c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  r = c.ReadResponse();
  EXPECT_EQ(Status(r), "HTTP/1.1 201 Created") << r;
  EXPECT_EQ(Body(r), "abcde");
}

TEST_F(HttpServerTest, ErrorsAre404And405And413And400) {
  {
    Conn c(server_->port());
    c.Send("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(Status(c.ReadResponse()), "HTTP/1.1 404 Not Found");
    // The connection survives a 404.
    c.Send("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    const std::string r = c.ReadResponse();
    EXPECT_EQ(Status(r), "HTTP/1.1 405 Method Not Allowed") << r;
    EXPECT_NE(r.find("Allow: GET, HEAD\r\n"), std::string::npos) << r;
  }
  {
    Conn c(server_->port());
    c.Send(absl::StrCat("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", std::string(5000, 'x')));
    const std::string r = c.ReadResponse();
    EXPECT_EQ(Status(r).substr(0, 12), "HTTP/1.1 413") << r;
    EXPECT_NE(Body(r).find("limit of 1000 bytes"), std::string::npos) << r;
  }
  {
    Conn c(server_->port());  // chunked, so the size is only known while reading
    c.Send(absl::StrCat("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n",
                        std::string(2000, 'y'), "\r\n0\r\n\r\n"));
    EXPECT_EQ(Status(c.ReadResponse()).substr(0, 12), "HTTP/1.1 413");
  }
  for (const char* garbage : {"THIS IS NOT HTTP\r\n\r\n", "GET /hello HTTP/1.1\r\nNo-Colon-Here\r\n\r\n",
                              "GET /hello HTTP/1.1\r\n\r\n" /* HTTP/1.1 without Host */}) {
    Conn c(server_->port());
    c.Send(garbage);
    const std::string r = c.ReadResponse();
    EXPECT_EQ(r.substr(0, 12), "HTTP/1.1 400") << garbage << " -> " << r;
  }
}

TEST_F(HttpServerTest, HeadHasHeadersButNoBody) {
  Conn c(server_->port());
  c.Send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
  // Read the head only: a HEAD response carries Content-Length but no body.
  c.Send("GET /hello?name=after HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string both = c.ReadResponse();  // HEAD's head (+ its Content-Length worth of the next response)
  EXPECT_EQ(Status(both), "HTTP/1.1 200 OK");
  EXPECT_NE(both.find("Content-Length: 10\r\n"), std::string::npos) << both;  // "hello  ua="
  EXPECT_EQ(Body(both).substr(0, 8), "HTTP/1.1") << "HEAD must not send a body: " << both;
}

TEST_F(HttpServerTest, StreamedBodyIsChunked) {
  Conn c(server_->port());
  c.Send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string r = c.ReadResponse();
  EXPECT_EQ(Status(r), "HTTP/1.1 200 OK") << r;
  EXPECT_NE(r.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << r;
  // Chunk boundaries are libmicrohttpd's choice: de-chunk and compare.
  std::string body = Body(r), plain;
  size_t at = 0;
  while (true) {
    const size_t eol = body.find("\r\n", at);
    ASSERT_NE(eol, std::string::npos) << body;
    const size_t n = std::stoul(body.substr(at, eol - at), nullptr, 16);
    if (n == 0) break;
    plain += body.substr(eol + 2, n);
    at = eol + 2 + n + 2;
  }
  EXPECT_EQ(plain, "piece0;piece1;piece2;");
}

TEST_F(HttpServerTest, ConcurrentClients) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Conn c(server_->port());
      for (int i = 0; i < 20; ++i) {
        c.Send(absl::StrCat("GET /hello?name=", t, "-", i, " HTTP/1.1\r\nHost: t\r\n\r\n"));
        if (Body(c.ReadResponse()) == absl::StrCat("hello ", t, "-", i, " ua=")) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8 * 20);
}

TEST(HttpServer, StopIsIdempotentAndFreesThePort) {
  Router r;
  r.Handle("GET", "/", [](const Request&) { return Response::Text(200, "x"); });
  auto s = Server::Start(ServerOptions{}, r);
  ASSERT_TRUE(s.ok()) << s.status();
  const int port = (*s)->port();
  (*s)->Stop();
  (*s)->Stop();
  Conn c(port);
  EXPECT_FALSE(c.connected());
  // The same port can be bound again.
  ServerOptions o;
  o.listen = absl::StrCat("127.0.0.1:", port);
  auto again = Server::Start(o, r);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(ListenAddress, Parses) {
  auto a = ParseHostPort("127.0.0.1:9100");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9100);
  auto b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  auto c = ParseHostPort(":80");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "");
  for (const char* bad : {"9100", "host:", "host:99999", "host:-1", "::1:80", "[::1]80", "h:8a"}) {
    auto s = ParseHostPort(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(std::string(s.status().message()).find(bad), std::string::npos) << s.status();
  }
  // A port in use is an error naming the address.
  auto l = ListenTcp("127.0.0.1:0");
  ASSERT_TRUE(l.ok()) << l.status();
  auto clash = ListenTcp(absl::StrCat("127.0.0.1:", l->port));
  EXPECT_FALSE(clash.ok());
  ::close(l->fd);
}

TEST(MetricsEndpoint, ServesTheRegistry) {
  metrics::Registry reg;
  reg.AddCounter("sq_hits_total", "Hits.").value()->Get().Increment(4);
  auto s = StartMetricsServer("127.0.0.1:0", reg);
  ASSERT_TRUE(s.ok()) << s.status();
  Conn c((*s)->port());
  c.Send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string r = c.ReadResponse();
  EXPECT_EQ(Status(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << r;
  EXPECT_EQ(Body(r), "# HELP sq_hits_total Hits.\n# TYPE sq_hits_total counter\nsq_hits_total 4\n");
  c.Send("POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(Status(c.ReadResponse()), "HTTP/1.1 405 Method Not Allowed");
}

}  // namespace
}  // namespace squeeze::http
