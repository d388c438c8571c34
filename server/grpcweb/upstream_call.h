// One call forwarded by the gRPC-web gateway to the coordinator's own
// grpc::Server over an in-process channel, as raw message bytes
// (grpc::GenericStub): the service implementation, status codes and metadata
// are exactly those of a native gRPC client.
//
// Threading: used by one thread (the HTTP connection's). Every operation waits
// on the call's private completion queue in slices of `poll_interval`; between
// slices it asks `should_cancel` (the browser hung up, the gateway is
// stopping) and, once that says yes, cancels the upstream call, which then
// ends promptly with CANCELLED. Invariant: at most one operation is
// outstanding; the destructor cancels an unfinished call and drains the queue.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "server/grpcweb/grpc_web_frame.h"

namespace squeeze::grpcweb {

class UpstreamCall {
 public:
  using CancelCheck = std::function<bool()>;

  // `method` is the full path "/package.Service/Method". `metadata` names must
  // be valid gRPC metadata keys (see gateway.cc); -bin values are raw bytes.
  UpstreamCall(grpc::GenericStub& stub, const std::string& method, const Metadata& metadata,
               std::optional<std::chrono::system_clock::time_point> deadline, CancelCheck should_cancel,
               std::chrono::milliseconds poll_interval = std::chrono::milliseconds(100));
  ~UpstreamCall();
  UpstreamCall(const UpstreamCall&) = delete;
  UpstreamCall& operator=(const UpstreamCall&) = delete;

  // Starts the call, writes `messages` in order and half-closes. Returns false
  // when the call ended early (Read then returns nullopt; Finish says why).
  bool Send(const std::vector<std::string>& messages);
  // The same, handing each message's bytes to gRPC without a copy.
  bool Send(std::vector<std::string>&& messages);
  // The next response message, or nullopt once the stream has ended.
  std::optional<std::string> Read();
  // The final status; call after Read returned nullopt (or Send false).
  const grpc::Status& Finish();

  // The server's initial metadata: valid after the first Read returned.
  Metadata InitialMetadata() const;
  // The server's trailing metadata: valid after Finish.
  Metadata TrailingMetadata() const;
  // True once should_cancel said yes and the call was cancelled for it.
  bool cancelled() const { return cancelled_; }

 private:
  bool Await(void* tag, bool cancellable = true);

  grpc::ClientContext ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rw_;
  CancelCheck should_cancel_;
  std::chrono::milliseconds poll_interval_;
  bool started_ = false;
  bool ended_ = false;     // the read side saw the end (or the call failed)
  bool finished_ = false;  // Finish completed; status_ is final
  bool cancelled_ = false;
  grpc::Status status_;
};

}  // namespace squeeze::grpcweb
