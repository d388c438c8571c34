// The gateway over real HTTP (libcurl) in front of a real grpc::Server (a small
// CompressionService whose answers the tests know), reached in process exactly
// as the coordinator does it.
#include "server/grpcweb/gateway.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/grpcweb/grpc_web_frame.h"
#include "server/grpcweb/grpc_web_text.h"
#include "squeeze/v1/service.grpc.pb.h"

namespace squeeze::grpcweb {
namespace {

using namespace std::chrono_literals;

class FakeService final : public v1::CompressionService::Service {
 public:
  std::atomic<bool> watch_cancelled{false};
  std::atomic<int> watches_started{0};

  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* r, v1::Job* out) override {
    ctx->AddInitialMetadata("x-served-by", "fake");
    ctx->AddTrailingMetadata("x-trace", "t1");
    if (r->job_id() != "known") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job " + r->job_id());
    out->set_job_id("known");
    out->set_state(v1::RUNNING);
    auto md = ctx->client_metadata();
    auto auth = md.find("authorization");
    if (auth != md.end()) (*out->mutable_labels())["authorization"] = std::string(auth->second.data(), auth->second.size());
    auto bin = md.find("x-blob-bin");
    if (bin != md.end()) {
      (*out->mutable_labels())["blob_hex"] = absl::BytesToHexString(absl::string_view(bin->second.data(), bin->second.size()));
    }
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* r,
                        grpc::ServerWriter<v1::JobEvent>* w) override {
    ++watches_started;
    v1::JobEvent e;
    e.set_job_id(r->job_id());
    if (r->job_id() == "forever") {
      e.set_seq(1);
      w->Write(e);
      while (!ctx->IsCancelled()) std::this_thread::sleep_for(10ms);
      watch_cancelled = true;
      return grpc::Status::CANCELLED;
    }
    for (int i = 1; i <= 3; ++i) {
      e.set_seq(i);
      e.set_message(std::string(static_cast<size_t>(i), 'm'));
      w->Write(e);
    }
    return grpc::Status(grpc::StatusCode::OK, "");
  }

  grpc::Status UploadModel(grpc::ServerContext*, grpc::ServerReader<v1::UploadChunk>* reader,
                           v1::UploadModelResponse* out) override {
    v1::UploadChunk c;
    int n = 0;
    int64_t bytes = 0;
    while (reader->Read(&c)) {
      ++n;
      bytes += static_cast<int64_t>(c.data().size());
    }
    out->set_file_count(n);
    out->set_total_bytes(bytes);
    return grpc::Status::OK;
  }
};

struct HttpResult {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

size_t OnBody(char* p, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(p, size * n);
  return size * n;
}

size_t OnHeader(char* p, size_t size, size_t n, void* user) {
  std::string line(p, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    (*static_cast<std::map<std::string, std::string>*>(user))[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

HttpResult Http(const std::string& method, const std::string& url, const std::string& body,
                const std::vector<std::string>& headers) {
  HttpResult out;
  CURL* c = curl_easy_init();
  curl_slist* h = nullptr;
  for (const std::string& s : headers) h = curl_slist_append(h, s.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &out.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
  const CURLcode rc = curl_easy_perform(c);
  EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return out;
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
    GatewayOptions o;
    o.allowed_origins = {"http://app.example"};
    auto g = Gateway::Start(o, server_->InProcessChannel(grpc::ChannelArguments()));
    ASSERT_TRUE(g.ok()) << g.status();
    gateway_ = *std::move(g);
  }
  void TearDown() override {
    if (gateway_) gateway_->Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }
  std::string Url(const std::string& method) {
    return absl::StrCat("http://127.0.0.1:", gateway_->port(), "/squeeze.v1.CompressionService/", method);
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Gateway> gateway_;
};

std::string Frame1(const google::protobuf::Message& m) { return EncodeDataFrame(m.SerializeAsString()); }

// Splits a binary response body into data payloads and the trailer metadata.
void Split(const std::string& body, std::vector<std::string>& data, Metadata& trailer) {
  auto frames = ParseFrames(body);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_FALSE(frames->empty());
  ASSERT_TRUE(frames->back().is_trailer()) << "the last frame must be the trailer";
  for (size_t i = 0; i + 1 < frames->size(); ++i) {
    ASSERT_FALSE((*frames)[i].is_trailer()) << "a trailer before the end";
    data.push_back((*frames)[i].payload);
  }
  auto md = ParseTrailerBlock(frames->back().payload);
  ASSERT_TRUE(md.ok());
  trailer = *md;
}

std::string Get(const Metadata& md, const std::string& key) {
  for (const auto& [k, v] : md) {
    if (k == key) return v;
  }
  return "<absent>";
}

TEST_F(GatewayTest, UnaryCallForwardsMetadataAndReturnsMessageThenTrailer) {
  v1::GetJobRequest req;
  req.set_job_id("known");
  HttpResult r = Http("POST", Url("GetJob"), Frame1(req),
                      {"Content-Type: application/grpc-web+proto", "X-Grpc-Web: 1", "Authorization: Bearer tok",
                       "X-Blob-Bin: AAEC/w=="});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/grpc-web+proto");
  EXPECT_EQ(r.headers["x-served-by"], "fake");
  std::vector<std::string> data;
  Metadata trailer;
  Split(r.body, data, trailer);
  ASSERT_EQ(data.size(), 1u);
  v1::Job job;
  ASSERT_TRUE(job.ParseFromString(data[0]));
  EXPECT_EQ(job.job_id(), "known");
  EXPECT_EQ(job.labels().at("authorization"), "Bearer tok");
  EXPECT_EQ(job.labels().at("blob_hex"), "000102ff");  // the -bin header's base64 decoded
  EXPECT_EQ(Get(trailer, "grpc-status"), "0");
  EXPECT_EQ(Get(trailer, "x-trace"), "t1");
}

TEST_F(GatewayTest, ErrorStatusAndMessageArriveInTheTrailerFrame) {
  v1::GetJobRequest req;
  req.set_job_id("nope");
  HttpResult r = Http("POST", Url("GetJob"), Frame1(req), {"Content-Type: application/grpc-web"});
  EXPECT_EQ(r.status, 200);
  std::vector<std::string> data;
  Metadata trailer;
  Split(r.body, data, trailer);
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(Get(trailer, "grpc-status"), "5");
  EXPECT_EQ(Get(trailer, "grpc-message"), "no job nope");
}

TEST_F(GatewayTest, TextModeStreamsEachFramePaddedOnItsOwn) {
  v1::WatchJobRequest req;
  req.set_job_id("three");
  HttpResult r = Http("POST", Url("WatchJob"), EncodeBase64(Frame1(req)),
                      {"Content-Type: application/grpc-web-text", "Accept: application/grpc-web-text"});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/grpc-web-text");
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  // Frames of 5+2+4, 5+4+5, 5+6+5 bytes: lengths not divisible by 3, so the
  // body has padding in the middle; the segment decoder must still read it.
  EXPECT_LT(r.body.find('='), r.body.size() - 2);
  auto raw = DecodeBase64Segments(r.body);
  ASSERT_TRUE(raw.ok()) << raw.status();
  std::vector<std::string> data;
  Metadata trailer;
  Split(*raw, data, trailer);
  ASSERT_EQ(data.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    v1::JobEvent e;
    ASSERT_TRUE(e.ParseFromString(data[i]));
    EXPECT_EQ(e.seq(), i + 1);
  }
  EXPECT_EQ(Get(trailer, "grpc-status"), "0");
}

TEST_F(GatewayTest, SeveralRequestFramesMakeAClientStream) {
  v1::UploadChunk a, b;
  a.set_data("12345");
  b.set_data("678");
  HttpResult r = Http("POST", Url("UploadModel"), Frame1(a) + Frame1(b), {"Content-Type: application/grpc-web"});
  std::vector<std::string> data;
  Metadata trailer;
  Split(r.body, data, trailer);
  ASSERT_EQ(data.size(), 1u);
  v1::UploadModelResponse resp;
  ASSERT_TRUE(resp.ParseFromString(data[0]));
  EXPECT_EQ(resp.file_count(), 2);
  EXPECT_EQ(resp.total_bytes(), 8);
}

TEST_F(GatewayTest, MalformedRequestsGetHttpErrorsWithAReason) {
  HttpResult json = Http("POST", Url("GetJob"), "{}", {"Content-Type: application/grpc-web+json"});
  EXPECT_EQ(json.status, 415);
  EXPECT_NE(json.body.find("application/grpc-web+json"), std::string::npos);
  HttpResult cut = Http("POST", Url("GetJob"), std::string("\0\0\0\0\x09zz", 7), {"Content-Type: application/grpc-web"});
  EXPECT_EQ(cut.status, 400);
  EXPECT_EQ(cut.headers["grpc-status"], "3");
  EXPECT_NE(cut.body.find("truncated payload"), std::string::npos);
  HttpResult b64 = Http("POST", Url("GetJob"), "**", {"Content-Type: application/grpc-web-text"});
  EXPECT_EQ(b64.status, 400);
  HttpResult timeout = Http("POST", Url("GetJob"), "", {"Content-Type: application/grpc-web", "grpc-timeout: 5x"});
  EXPECT_EQ(timeout.status, 400);
  EXPECT_EQ(Http("POST", Url("NoSuchMethod"), "", {"Content-Type: application/grpc-web"}).status, 404);
  EXPECT_EQ(Http("GET", Url("GetJob"), "", {}).status, 405);
}

TEST_F(GatewayTest, CorsPreflightAndDisallowedOrigins) {
  HttpResult pre = Http("OPTIONS", Url("WatchJob"), "",
                        {"Origin: http://app.example", "Access-Control-Request-Method: POST",
                         "Access-Control-Request-Headers: content-type,x-grpc-web"});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.headers["access-control-allow-origin"], "http://app.example");
  EXPECT_EQ(pre.headers["access-control-allow-headers"], "content-type,x-grpc-web");
  v1::GetJobRequest req;
  req.set_job_id("known");
  HttpResult ok = Http("POST", Url("GetJob"), Frame1(req),
                       {"Content-Type: application/grpc-web", "Origin: http://app.example"});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.headers["access-control-allow-origin"], "http://app.example");
  EXPECT_NE(ok.headers["access-control-expose-headers"].find("grpc-status"), std::string::npos);
  HttpResult evil = Http("POST", Url("GetJob"), Frame1(req),
                         {"Content-Type: application/grpc-web", "Origin: http://evil.example"});
  EXPECT_EQ(evil.status, 403);
  EXPECT_EQ(evil.headers.count("access-control-allow-origin"), 0u);
}

size_t AbortAfterFirstBytes(char*, size_t size, size_t n, void* user) {
  static_cast<std::atomic<bool>*>(user)->store(true);
  (void)size;
  (void)n;
  return 0;  // abort the transfer: curl closes the connection
}

TEST_F(GatewayTest, ClientHangUpCancelsTheUpstreamStream) {
  v1::WatchJobRequest req;
  req.set_job_id("forever");
  const std::string body = Frame1(req);
  std::atomic<bool> got_bytes{false};
  CURL* c = curl_easy_init();
  curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/grpc-web");
  const std::string url = Url("WatchJob");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AbortAfterFirstBytes);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &got_bytes);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
  EXPECT_EQ(curl_easy_perform(c), CURLE_WRITE_ERROR);  // we aborted after the first event
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  EXPECT_TRUE(got_bytes.load());
  // The service sees the cancellation once the gateway notices the hang-up.
  for (int i = 0; i < 1000 && !service_.watch_cancelled.load(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(service_.watch_cancelled.load()) << "upstream WatchJob was not cancelled after the client left";
}

TEST_F(GatewayTest, StopEndsStreamsInProgress) {
  std::thread client([&] {
    v1::WatchJobRequest req;
    req.set_job_id("forever");
    CURL* c = curl_easy_init();
    const std::string body = Frame1(req), url = Url("WatchJob");
    std::string got;
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/grpc-web");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_perform(c);  // ends when the gateway stops (trailer or closed connection)
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
  });
  for (int i = 0; i < 1000 && service_.watches_started.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(service_.watches_started.load(), 1);
  gateway_->Stop();  // must return: the stream is cancelled, not waited for
  client.join();
  for (int i = 0; i < 1000 && !service_.watch_cancelled.load(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(service_.watch_cancelled.load());
}

TEST(GrpcTimeout, ParsesEveryUnitAndRejectsTheRest) {
  EXPECT_EQ(*ParseGrpcTimeout("10S"), std::chrono::seconds(10));
  EXPECT_EQ(*ParseGrpcTimeout("250m"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseGrpcTimeout("1H"), std::chrono::hours(1));
  EXPECT_EQ(*ParseGrpcTimeout("2M"), std::chrono::minutes(2));
  EXPECT_EQ(*ParseGrpcTimeout("7u"), std::chrono::microseconds(7));
  EXPECT_EQ(*ParseGrpcTimeout("9n"), std::chrono::nanoseconds(9));
  EXPECT_FALSE(ParseGrpcTimeout("S").ok());
  EXPECT_FALSE(ParseGrpcTimeout("123456789S").ok());
  EXPECT_FALSE(ParseGrpcTimeout("1s").ok());
  EXPECT_FALSE(ParseGrpcTimeout("-1S").ok());
  // 8 digits of hours would overflow nanoseconds: clamped to 100 days.
  EXPECT_EQ(*ParseGrpcTimeout("99999999H"), std::chrono::hours(24 * 100));
  EXPECT_EQ(*ParseGrpcTimeout("99999999S"), std::chrono::hours(24 * 100));
  EXPECT_EQ(*ParseGrpcTimeout("99999999m"), std::chrono::milliseconds(99999999));
}

TEST(MetadataFromHeaders, KeepsCallMetadataDropsHttpAndBrowserHeaders) {
  Metadata md = MetadataFromHeaders({{"host", "h"},
                                     {"content-type", "application/grpc-web"},
                                     {"origin", "http://x"},
                                     {"x-grpc-web", "1"},
                                     {"grpc-timeout", "1S"},
                                     {"sec-fetch-mode", "cors"},
                                     {"authorization", "Bearer t"},
                                     {"x-tenant", "acme"},
                                     {"x-bad", "a\x01"},
                                     {"x-data-bin", "AAE="},
                                     {"x-junk-bin", "!!"}});
  EXPECT_EQ(md, (Metadata{{"authorization", "Bearer t"}, {"x-tenant", "acme"}, {"x-data-bin", std::string("\0\1", 2)}}));
}

}  // namespace
}  // namespace squeeze::grpcweb
