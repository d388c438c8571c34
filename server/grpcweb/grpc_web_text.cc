#include "server/grpcweb/grpc_web_text.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace squeeze::grpcweb {

namespace {

absl::string_view MediaType(absl::string_view content_type) {
  const size_t semi = content_type.find(';');
  if (semi != absl::string_view::npos) content_type = content_type.substr(0, semi);
  return absl::StripAsciiWhitespace(content_type);
}

bool IsBase64Char(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/'; }

}  // namespace

absl::StatusOr<Encoding> ParseGrpcWebContentType(absl::string_view content_type) {
  const std::string t = absl::AsciiStrToLower(MediaType(content_type));
  if (t == "application/grpc-web" || t == "application/grpc-web+proto") return Encoding::kBinary;
  if (t == "application/grpc-web-text" || t == "application/grpc-web-text+proto") return Encoding::kText;
  return absl::InvalidArgumentError(
      absl::StrCat("content-type \"", content_type,
                   "\" is not supported (use application/grpc-web, application/grpc-web+proto, "
                   "application/grpc-web-text or application/grpc-web-text+proto)"));
}

std::string ResponseContentType(absl::string_view request_content_type) {
  return absl::AsciiStrToLower(MediaType(request_content_type));
}

absl::StatusOr<std::string> DecodeBase64Segments(absl::string_view text) {
  std::string out;
  std::string segment;  // the current padded-or-final run of 4-char groups
  char group[4];
  size_t filled = 0;
  size_t group_start = 0;  // offset in `text` of the group's first character
  auto flush = [&]() -> absl::Status {
    std::string bytes;
    if (!absl::Base64Unescape(segment, &bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("grpc-web-text: invalid base64 segment ending at offset ", group_start));
    }
    out += bytes;
    segment.clear();
    return absl::OkStatus();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) continue;
    if (filled == 0) group_start = i;
    if (!IsBase64Char(c) && c != '=') {
      return absl::InvalidArgumentError(absl::StrCat("grpc-web-text: character 0x", absl::Hex(static_cast<uint8_t>(c)),
                                                     " at offset ", i, " is not base64"));
    }
    group[filled++] = c;
    if (filled < 4) continue;
    filled = 0;
    // Padding only at the end of a group: "xx==" or "xxx=".
    const int pads = (group[3] == '=') + (group[2] == '=' && group[3] == '=');
    for (int k = 0; k < 4 - pads; ++k) {
      if (group[k] == '=') {
        return absl::InvalidArgumentError(absl::StrCat("grpc-web-text: misplaced '=' in the group at offset ", group_start));
      }
    }
    segment.append(group, 4);
    if (pads > 0) {
      if (absl::Status s = flush(); !s.ok()) return s;
    }
  }
  if (filled == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("grpc-web-text: a single dangling base64 character at offset ", group_start));
  }
  for (size_t k = 0; k < filled; ++k) {
    if (group[k] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("grpc-web-text: misplaced '=' in the group at offset ", group_start));
    }
  }
  segment.append(group, filled);  // an unpadded final group
  if (!segment.empty()) {
    if (absl::Status s = flush(); !s.ok()) return s;
  }
  return out;
}

std::string EncodeBase64(absl::string_view bytes) { return absl::Base64Escape(bytes); }

}  // namespace squeeze::grpcweb
