#include "server/grpcweb/grpc_web_text.h"

#include <gtest/gtest.h>

#include <string>

#include "server/grpcweb/grpc_web_frame.h"

namespace squeeze::grpcweb {
namespace {

TEST(GrpcWebText, ContentTypes) {
  EXPECT_EQ(*ParseGrpcWebContentType("application/grpc-web"), Encoding::kBinary);
  EXPECT_EQ(*ParseGrpcWebContentType("application/grpc-web+proto"), Encoding::kBinary);
  EXPECT_EQ(*ParseGrpcWebContentType("Application/GRPC-Web-Text; charset=utf-8"), Encoding::kText);
  EXPECT_EQ(*ParseGrpcWebContentType("application/grpc-web-text+proto"), Encoding::kText);
  auto json = ParseGrpcWebContentType("application/grpc-web+json");
  ASSERT_FALSE(json.ok());
  EXPECT_NE(json.status().message().find("application/grpc-web+json"), std::string::npos);
  EXPECT_FALSE(ParseGrpcWebContentType("").ok());
  EXPECT_FALSE(ParseGrpcWebContentType("application/grpc").ok());
  EXPECT_EQ(ResponseContentType("application/grpc-web-text+proto; x=y"), "application/grpc-web-text+proto");
}

TEST(GrpcWebText, RoundTripsEveryLengthModuloThree) {
  for (size_t n = 0; n < 10; ++n) {
    std::string bytes;
    for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>(i * 37 + 200));
    auto back = DecodeBase64Segments(EncodeBase64(bytes));
    ASSERT_TRUE(back.ok()) << n;
    EXPECT_EQ(*back, bytes) << n;
  }
}

TEST(GrpcWebText, ConcatenatedPaddedSegmentsAsAStreamIsFlushedPieceByPiece) {
  // What a streaming response in -text mode looks like: each frame encoded
  // on its own (1-byte and 2-byte paddings in the middle of the body).
  const std::string f1 = EncodeDataFrame("a"), f2 = EncodeDataFrame("bc"), f3 = EncodeTrailerFrame(0, "");
  const std::string body = EncodeBase64(f1) + EncodeBase64(f2) + EncodeBase64(f3);
  ASSERT_NE(body.find('='), body.size() - 1);  // padding really sits mid-stream
  auto decoded = DecodeBase64Segments(body);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, f1 + f2 + f3);
  auto frames = ParseFrames(*decoded);
  ASSERT_TRUE(frames.ok());
  EXPECT_EQ(frames->size(), 3u);
}

TEST(GrpcWebText, SkipsWhitespaceAndAcceptsAnUnpaddedEnd) {
  EXPECT_EQ(*DecodeBase64Segments("aGVs\r\nbG8"), "hello");
  EXPECT_EQ(*DecodeBase64Segments("  aGk= aGk=\n"), "hihi");
  EXPECT_EQ(*DecodeBase64Segments(""), "");
}

TEST(GrpcWebText, RejectsBadCharactersPaddingAndDanglingCharacters) {
  auto bad = DecodeBase64Segments("aGVs*G8=");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("offset 4"), std::string::npos) << bad.status();
  EXPECT_FALSE(DecodeBase64Segments("a=Vs").ok());
  EXPECT_FALSE(DecodeBase64Segments("a===").ok());
  EXPECT_FALSE(DecodeBase64Segments("aGVsb").ok());  // one character left over
  EXPECT_FALSE(DecodeBase64Segments("aG=").ok());
  EXPECT_FALSE(DecodeBase64Segments("aGVs-G8_").ok());  // URL-safe alphabet is not ours
}

}  // namespace
}  // namespace squeeze::grpcweb
