// health_probe ADDR [SERVICE]: one grpc.health.v1.Health/Check call, as the
// kubelet's gRPC probe makes it (deploy/k8s/coordinator.yaml). Prints the
// serving status; exit 0 when SERVING, 1 for another status, 2 when the call
// failed (the gRPC status is printed).
//
// The request and response are the two-field health messages, encoded by hand
// (HealthCheckRequest{string service = 1}, HealthCheckResponse{enum status = 1}),
// so no generated code is needed.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: health_probe ADDR [SERVICE]\n");
    return 2;
  }
  const std::string service = argc > 2 ? argv[2] : "";
  std::string request;
  if (!service.empty()) {
    if (service.size() > 127) return 2;
    request.push_back('\x0a');  // field 1, length-delimited
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice slice(request);
  grpc::ByteBuffer send(&slice, 1);
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", send, &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) {
    std::printf("call failed: %d %s\n", static_cast<int>(status.error_code()), status.error_message().c_str());
    return 2;
  }
  std::vector<grpc::Slice> slices;
  if (!reply.Dump(&slices).ok()) return 2;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // Field 1 varint (0x08 <status>); absent = 0 (UNKNOWN).
  int code = 0;
  if (bytes.size() >= 2 && bytes[0] == '\x08') code = static_cast<unsigned char>(bytes[1]);
  static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::printf("%s\n", code >= 0 && code <= 3 ? kNames[code] : "?");
  return code == 1 ? 0 : 1;
}
