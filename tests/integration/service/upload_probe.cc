// upload_probe ADDR: sends malformed UploadModel streams straight over gRPC and
// checks each is rejected with a clear INVALID_ARGUMENT (or CANCELLED). The
// calling script then checks that nothing was stored. Exit 0 when all pass.
#include <cstdio>
#include <functional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "server/objectstore/sha256.h"
#include "squeeze/v1/service.grpc.pb.h"

namespace v1 = squeeze::v1;

namespace {

v1::UploadChunk Header(const std::string& path, int64_t size, const std::string& sha = "") {
  v1::UploadChunk c;
  c.mutable_file()->set_path(path);
  c.mutable_file()->set_size(size);
  c.mutable_file()->set_sha256(sha);
  return c;
}
v1::UploadChunk Data(const std::string& d) {
  v1::UploadChunk c;
  c.set_data(d);
  return c;
}
v1::UploadChunk Finish(int n) {
  v1::UploadChunk c;
  c.mutable_finish()->set_file_count(n);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: upload_probe HOST:PORT\n");
    return 2;
  }
  auto stub = v1::CompressionService::NewStub(grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  int failures = 0;
  auto expect = [&](const char* name, grpc::StatusCode want, const char* must_mention,
                    const std::function<void(grpc::ClientWriter<v1::UploadChunk>&, grpc::ClientContext&)>& send) {
    grpc::ClientContext ctx;
    v1::UploadModelResponse resp;
    auto w = stub->UploadModel(&ctx, &resp);
    send(*w, ctx);
    w->WritesDone();
    grpc::Status s = w->Finish();
    const bool ok = s.error_code() == want && s.error_message().find(must_mention) != std::string::npos;
    std::printf("%-28s code=%d msg=\"%s\" %s\n", name, s.error_code(), s.error_message().c_str(), ok ? "ok" : "WRONG");
    failures += !ok;
  };
  const std::string half(500, 'x');
  expect("truncated (no Finish)", grpc::StatusCode::INVALID_ARGUMENT, "truncated", [&](auto& w, auto&) {
    w.Write(Header("model.safetensors", 1000));
    w.Write(Data(half));
  });
  expect("short file then Finish", grpc::StatusCode::INVALID_ARGUMENT, "declared 1000", [&](auto& w, auto&) {
    w.Write(Header("model.safetensors", 1000));
    w.Write(Data(half));
    w.Write(Finish(1));
  });
  expect("second file missing", grpc::StatusCode::INVALID_ARGUMENT, "Finish says 2", [&](auto& w, auto&) {
    w.Write(Header("a.bin", 500));
    w.Write(Data(half));
    w.Write(Finish(2));
  });
  expect("sha256 mismatch", grpc::StatusCode::INVALID_ARGUMENT, "does not match", [&](auto& w, auto&) {
    w.Write(Header("a.bin", 500, squeeze::store::Sha256Hex("something else")));
    w.Write(Data(half));
    w.Write(Finish(1));
  });
  expect("path escapes", grpc::StatusCode::INVALID_ARGUMENT, "file.path", [&](auto& w, auto&) {
    w.Write(Header("../etc/passwd", 500));
    w.Write(Data(half));
    w.Write(Finish(1));
  });
  expect("too many bytes", grpc::StatusCode::INVALID_ARGUMENT, "more bytes", [&](auto& w, auto&) {
    w.Write(Header("a.bin", 10));
    w.Write(Data(half));
    w.Write(Finish(1));
  });
  // errors_test.sh starts the coordinator with --max-upload-bytes 4096.
  expect("over --max-upload-bytes", grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-upload-bytes 4096",
         [&](auto& w, auto&) {
           w.Write(Header("a.bin", 3000));
           w.Write(Data(std::string(3000, 'y')));
           w.Write(Header("b.bin", 3000));
           w.Write(Data(std::string(3000, 'z')));
           w.Write(Finish(2));
         });
  expect("client cancels mid-stream", grpc::StatusCode::CANCELLED, "", [&](auto& w, auto& ctx) {
    w.Write(Header("a.bin", 1000));
    w.Write(Data(half));
    ctx.TryCancel();
  });
  return failures == 0 ? 0 : 1;
}
