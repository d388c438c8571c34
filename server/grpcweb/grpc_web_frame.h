// The gRPC-web message framing (grpc/grpc doc/PROTOCOL-WEB.md): a body is a
// sequence of frames, each
//   1 byte flags | 4 bytes big-endian length | `length` bytes payload
// where flags 0x00 is a data frame (one serialized message) and 0x80 a trailer
// frame whose payload is an HTTP/1-style header block ("name: value\r\n"...).
// Bit 0x01 marks a compressed payload; we never negotiate compression, so a
// compressed frame is rejected.
//
// Pure functions on bytes (no I/O, no gRPC): ParseFrames takes untrusted input
// and is the libFuzzer entry point (tests/fuzz). Invariant: ParseFrames either
// returns frames whose encodings concatenate to exactly the input, or an
// error naming the byte offset and the reason; it never reads past the input
// and never allocates more than the input size for payloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze::grpcweb {

inline constexpr uint8_t kDataFlag = 0x00;
inline constexpr uint8_t kTrailerFlag = 0x80;
inline constexpr uint8_t kCompressedFlag = 0x01;
inline constexpr size_t kFrameHeaderBytes = 5;

struct Frame {
  uint8_t flags = kDataFlag;
  std::string payload;
  bool is_trailer() const { return (flags & kTrailerFlag) != 0; }
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// Splits `bytes` into frames. InvalidArgument when a frame is truncated, has
// unknown flag bits, is compressed, or is longer than `max_payload_bytes`.
absl::StatusOr<std::vector<Frame>> ParseFrames(absl::string_view bytes, size_t max_payload_bytes = 16 << 20);

// One frame: header + payload (payload below 4 GiB).
std::string EncodeFrame(uint8_t flags, absl::string_view payload);
inline std::string EncodeDataFrame(absl::string_view message) { return EncodeFrame(kDataFlag, message); }

// The trailer frame: "grpc-status: N\r\n", "grpc-message: ..." (percent-encoded,
// omitted when empty), then `metadata` in order. Names are written lower-case.
std::string EncodeTrailerFrame(int grpc_status, absl::string_view grpc_message, const Metadata& metadata = {});

// Parses a trailer frame's payload: lines "name: value" separated by CRLF (a
// final CRLF is optional). Names are lower-cased; values have surrounding
// blanks trimmed. InvalidArgument for a line without ':' or an empty name.
absl::StatusOr<Metadata> ParseTrailerBlock(absl::string_view block);

// grpc-message encoding (gRPC over HTTP/2 spec): bytes outside 0x20..0x7E and
// '%' become %XX; PercentDecodeGrpcMessage is its lenient inverse (a malformed
// escape is kept as is).
std::string PercentEncodeGrpcMessage(absl::string_view message);
std::string PercentDecodeGrpcMessage(absl::string_view encoded);

}  // namespace squeeze::grpcweb
