// libFuzzer target: the gRPC-web codec of server/grpcweb (untrusted request
// bodies). The first byte picks the entry point, the rest is its input:
//   0: ParseFrames (binary body) - accepted frames re-encode to exactly the
//      input, payloads never exceed the limit; trailer frames go through
//      ParseTrailerBlock;
//   1: DecodeBase64Segments (-text body) - what decodes re-encodes and decodes
//      back to the same bytes, then is parsed as frames;
//   2: grpc-message percent encoding - decode(encode(x)) == x;
//   3: ParseGrpcWebContentType.
#include <cstdint>
#include <cstdio>
#include <string>

#include "server/grpcweb/grpc_web_frame.h"
#include "server/grpcweb/grpc_web_text.h"

namespace {

using namespace squeeze::grpcweb;

constexpr size_t kMaxPayload = 4096;

void Frames(absl::string_view body) {
  absl::StatusOr<std::vector<Frame>> frames = ParseFrames(body, kMaxPayload);
  if (!frames.ok()) return;
  std::string again;
  for (const Frame& f : *frames) {
    if (f.payload.size() > kMaxPayload) __builtin_trap();
    again += EncodeFrame(f.flags, f.payload);
    if (f.is_trailer()) (void)ParseTrailerBlock(f.payload);
  }
  if (again != body) {
    std::fprintf(stderr, "gRPC-web frames do not re-encode to their input\n");
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      Frames(in);
      break;
    case 1: {
      absl::StatusOr<std::string> bytes = DecodeBase64Segments(in);
      if (!bytes.ok()) break;
      absl::StatusOr<std::string> again = DecodeBase64Segments(EncodeBase64(*bytes));
      if (!again.ok() || *again != *bytes) __builtin_trap();
      Frames(*bytes);
      break;
    }
    case 2:
      if (PercentDecodeGrpcMessage(PercentEncodeGrpcMessage(in)) != in) __builtin_trap();
      (void)PercentDecodeGrpcMessage(in);
      break;
    case 3:
      if (ParseGrpcWebContentType(in).ok()) (void)ResponseContentType(in);
      break;
  }
  return 0;
}
