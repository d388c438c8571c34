// The two gRPC-web body encodings and their Content-Types:
//   application/grpc-web[+proto]       frames as bytes
//   application/grpc-web-text[+proto]  frames base64-encoded (standard alphabet)
// A -text body may be several base64 segments each with its own padding
// (PROTOCOL-WEB.md: "padding may occur in the middle of the stream"), so the
// decoder works in 4-character groups and restarts after a padded group. Our
// encoder encodes every flushed piece (whole frames) on its own, padded.
// Pure functions (no I/O): the decoder takes untrusted input.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace squeeze::grpcweb {

enum class Encoding { kBinary, kText };

// Encoding of a request Content-Type; parameters after ';' are ignored and the
// comparison is case-insensitive. InvalidArgument naming the type for anything
// else (e.g. application/grpc-web+json: we only speak proto).
absl::StatusOr<Encoding> ParseGrpcWebContentType(absl::string_view content_type);

// The response Content-Type for a request Content-Type that parsed: the same
// media type without parameters, lower-cased.
std::string ResponseContentType(absl::string_view request_content_type);

// Decodes a -text body: ASCII whitespace is skipped; padded segments may be
// concatenated; a final segment may omit its padding. InvalidArgument naming
// the character offset for a non-base64 character, misplaced '=' or a dangling
// single character.
absl::StatusOr<std::string> DecodeBase64Segments(absl::string_view text);

// Standard base64 with padding.
std::string EncodeBase64(absl::string_view bytes);

}  // namespace squeeze::grpcweb
