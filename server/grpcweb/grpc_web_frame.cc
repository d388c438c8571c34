#include "server/grpcweb/grpc_web_frame.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace squeeze::grpcweb {

absl::StatusOr<std::vector<Frame>> ParseFrames(absl::string_view bytes, size_t max_payload_bytes) {
  std::vector<Frame> frames;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < kFrameHeaderBytes) {
      return absl::InvalidArgumentError(absl::StrCat("gRPC-web frame at byte ", pos, ": truncated header (",
                                                     bytes.size() - pos, " of 5 bytes)"));
    }
    const uint8_t flags = static_cast<uint8_t>(bytes[pos]);
    if ((flags & ~(kTrailerFlag | kCompressedFlag)) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("gRPC-web frame at byte ", pos, ": unknown flags 0x", absl::Hex(flags)));
    }
    if ((flags & kCompressedFlag) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("gRPC-web frame at byte ", pos, ": compressed frames are not supported (no grpc-encoding)"));
    }
    uint64_t length = 0;
    for (size_t i = 1; i < kFrameHeaderBytes; ++i) length = (length << 8) | static_cast<uint8_t>(bytes[pos + i]);
    if (length > max_payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("gRPC-web frame at byte ", pos, ": length ", length,
                                                     " exceeds the limit of ", max_payload_bytes, " bytes"));
    }
    const size_t start = pos + kFrameHeaderBytes;
    if (bytes.size() - start < length) {
      return absl::InvalidArgumentError(absl::StrCat("gRPC-web frame at byte ", pos, ": truncated payload (",
                                                     bytes.size() - start, " of ", length, " bytes)"));
    }
    frames.push_back(Frame{flags, std::string(bytes.substr(start, length))});
    pos = start + length;
  }
  return frames;
}

std::string EncodeFrame(uint8_t flags, absl::string_view payload) {
  std::string out;
  out.reserve(kFrameHeaderBytes + payload.size());
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

std::string EncodeTrailerFrame(int grpc_status, absl::string_view grpc_message, const Metadata& metadata) {
  std::string block = absl::StrCat("grpc-status: ", grpc_status, "\r\n");
  if (!grpc_message.empty()) absl::StrAppend(&block, "grpc-message: ", PercentEncodeGrpcMessage(grpc_message), "\r\n");
  for (const auto& [name, value] : metadata) absl::StrAppend(&block, absl::AsciiStrToLower(name), ": ", value, "\r\n");
  return EncodeFrame(kTrailerFlag, block);
}

absl::StatusOr<Metadata> ParseTrailerBlock(absl::string_view block) {
  Metadata out;
  for (absl::string_view line : absl::StrSplit(block, "\r\n")) {
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("gRPC-web trailer line without ':': \"", line, "\""));
    }
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
    if (name.empty()) return absl::InvalidArgumentError("gRPC-web trailer line with an empty name");
    out.emplace_back(std::move(name), std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return out;
}

std::string PercentEncodeGrpcMessage(absl::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string PercentDecodeGrpcMessage(absl::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size()) {
      const int hi = HexValue(encoded[i + 1]), lo = HexValue(encoded[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(encoded[i]);
  }
  return out;
}

}  // namespace squeeze::grpcweb
