#include "server/grpcweb/upstream_call.h"

#include <utility>

namespace squeeze::grpcweb {

namespace {

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

// Takes ownership of `bytes` without copying them: the slice frees the
// string when gRPC is done with it.
grpc::ByteBuffer StealIntoByteBuffer(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc_slice raw = grpc_slice_new_with_user_data(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  grpc::Slice slice(raw, grpc::Slice::STEAL_REF);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

Metadata ToMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& md) {
  Metadata out;
  for (const auto& [k, v] : md) out.emplace_back(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  return out;
}

}  // namespace

UpstreamCall::UpstreamCall(grpc::GenericStub& stub, const std::string& method, const Metadata& metadata,
                           std::optional<std::chrono::system_clock::time_point> deadline, CancelCheck should_cancel,
                           std::chrono::milliseconds poll_interval)
    : should_cancel_(std::move(should_cancel)), poll_interval_(poll_interval) {
  for (const auto& [k, v] : metadata) ctx_.AddMetadata(k, v);
  if (deadline) ctx_.set_deadline(*deadline);
  rw_ = stub.PrepareCall(&ctx_, method, &cq_);
}

UpstreamCall::~UpstreamCall() {
  if (started_ && !finished_) {
    ctx_.TryCancel();
    void* tag = &status_;
    rw_->Finish(&status_, tag);
    Await(tag, /*cancellable=*/false);
  }
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) {
  }
}

bool UpstreamCall::Await(void* tag, bool cancellable) {
  for (;;) {
    void* got = nullptr;
    bool ok = false;
    switch (cq_.AsyncNext(&got, &ok, std::chrono::system_clock::now() + poll_interval_)) {
      case grpc::CompletionQueue::GOT_EVENT:
        // One operation is outstanding at a time, so `got` is `tag`.
        (void)tag;
        return ok;
      case grpc::CompletionQueue::SHUTDOWN:
        return false;
      case grpc::CompletionQueue::TIMEOUT:
        if (cancellable && !cancelled_ && should_cancel_ && should_cancel_()) {
          cancelled_ = true;
          ctx_.TryCancel();  // the outstanding operation now completes with ok = false
        }
        break;
    }
  }
}

bool UpstreamCall::Send(const std::vector<std::string>& messages) {
  return Send(std::vector<std::string>(messages));
}

bool UpstreamCall::Send(std::vector<std::string>&& messages) {
  started_ = true;
  rw_->StartCall(this);
  if (!Await(this)) {
    ended_ = true;
    return false;
  }
  for (std::string& m : messages) {
    rw_->Write(StealIntoByteBuffer(std::move(m)), this);
    if (!Await(this)) {
      ended_ = true;
      return false;
    }
  }
  rw_->WritesDone(this);
  if (!Await(this)) {
    ended_ = true;
    return false;
  }
  return true;
}

std::optional<std::string> UpstreamCall::Read() {
  if (ended_) return std::nullopt;
  grpc::ByteBuffer buffer;
  rw_->Read(&buffer, this);
  if (!Await(this)) {
    ended_ = true;
    return std::nullopt;
  }
  return FromByteBuffer(buffer);
}

const grpc::Status& UpstreamCall::Finish() {
  if (finished_) return status_;
  if (!started_) {
    status_ = grpc::Status(grpc::StatusCode::INTERNAL, "gRPC-web gateway: call never started");
    finished_ = true;
    return status_;
  }
  rw_->Finish(&status_, this);
  Await(this, /*cancellable=*/true);
  finished_ = true;
  return status_;
}

Metadata UpstreamCall::InitialMetadata() const { return ToMetadata(ctx_.GetServerInitialMetadata()); }
Metadata UpstreamCall::TrailingMetadata() const { return ToMetadata(ctx_.GetServerTrailingMetadata()); }

}  // namespace squeeze::grpcweb
