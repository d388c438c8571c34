#include "server/grpcweb/grpc_web_frame.h"

#include <gtest/gtest.h>

#include <string>

namespace squeeze::grpcweb {
namespace {

TEST(GrpcWebFrame, EncodesHeaderAsFlagAndBigEndianLength) {
  const std::string f = EncodeDataFrame(std::string(258, 'x'));
  ASSERT_EQ(f.size(), 5u + 258u);
  EXPECT_EQ(static_cast<uint8_t>(f[0]), 0x00);
  EXPECT_EQ(static_cast<uint8_t>(f[1]), 0);
  EXPECT_EQ(static_cast<uint8_t>(f[2]), 0);
  EXPECT_EQ(static_cast<uint8_t>(f[3]), 1);
  EXPECT_EQ(static_cast<uint8_t>(f[4]), 2);
}

TEST(GrpcWebFrame, ParsesConcatenatedFramesBackExactly) {
  const std::string a = EncodeDataFrame("hello"), b = EncodeDataFrame(""), c = EncodeTrailerFrame(5, "no job x");
  auto frames = ParseFrames(a + b + c);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 3u);
  EXPECT_EQ((*frames)[0].payload, "hello");
  EXPECT_FALSE((*frames)[0].is_trailer());
  EXPECT_EQ((*frames)[1].payload, "");
  EXPECT_TRUE((*frames)[2].is_trailer());
  std::string again;
  for (const Frame& f : *frames) again += EncodeFrame(f.flags, f.payload);
  EXPECT_EQ(again, a + b + c);
  auto trailers = ParseTrailerBlock((*frames)[2].payload);
  ASSERT_TRUE(trailers.ok());
  ASSERT_EQ(trailers->size(), 2u);
  EXPECT_EQ((*trailers)[0], (std::pair<std::string, std::string>("grpc-status", "5")));
  EXPECT_EQ((*trailers)[1], (std::pair<std::string, std::string>("grpc-message", "no job x")));
}

TEST(GrpcWebFrame, EmptyInputIsNoFrames) {
  auto frames = ParseFrames("");
  ASSERT_TRUE(frames.ok());
  EXPECT_TRUE(frames->empty());
}

TEST(GrpcWebFrame, RejectsTruncatedHeaderAndPayloadNamingTheOffset) {
  const std::string ok = EncodeDataFrame("abc");
  auto h = ParseFrames(ok + std::string("\0\0", 2));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("byte 8: truncated header"), std::string::npos) << h.status();
  auto p = ParseFrames(ok.substr(0, 6));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("truncated payload (1 of 3 bytes)"), std::string::npos) << p.status();
}

TEST(GrpcWebFrame, RejectsUnknownFlagsCompressionAndOversizedFrames) {
  std::string f = EncodeDataFrame("abc");
  f[0] = 0x02;
  EXPECT_NE(ParseFrames(f).status().message().find("unknown flags 0x2"), std::string::npos);
  f[0] = 0x01;
  EXPECT_NE(ParseFrames(f).status().message().find("compressed"), std::string::npos);
  // A declared length of 4 GiB - 1 must be refused before any allocation.
  const std::string huge("\x00\xff\xff\xff\xff", 5);
  auto big = ParseFrames(huge, 1 << 20);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("exceeds the limit"), std::string::npos) << big.status();
  EXPECT_TRUE(ParseFrames(EncodeDataFrame(std::string(100, 'a')), 100).ok());
  EXPECT_FALSE(ParseFrames(EncodeDataFrame(std::string(101, 'a')), 100).ok());
}

TEST(GrpcWebFrame, TrailerCarriesMetadataLowerCasedAndMessagePercentEncoded) {
  const std::string f = EncodeTrailerFrame(3, "bad 100% \xc3\xa9\r\n", {{"X-Request-Id", "42"}});
  auto frames = ParseFrames(f);
  ASSERT_TRUE(frames.ok());
  EXPECT_EQ((*frames)[0].flags, kTrailerFlag);
  auto md = ParseTrailerBlock((*frames)[0].payload);
  ASSERT_TRUE(md.ok());
  ASSERT_EQ(md->size(), 3u);
  EXPECT_EQ((*md)[1].second, "bad 100%25 %C3%A9%0D%0A");
  EXPECT_EQ(PercentDecodeGrpcMessage((*md)[1].second), "bad 100% \xc3\xa9\r\n");
  EXPECT_EQ((*md)[2], (std::pair<std::string, std::string>("x-request-id", "42")));
}

TEST(GrpcWebFrame, TrailerBlockErrorsAndLenientPercentDecoding) {
  EXPECT_FALSE(ParseTrailerBlock("grpc-status 0\r\n").ok());
  EXPECT_FALSE(ParseTrailerBlock(": 0\r\n").ok());
  auto md = ParseTrailerBlock("Grpc-Status:0");  // no final CRLF, no blank
  ASSERT_TRUE(md.ok());
  EXPECT_EQ((*md)[0].first, "grpc-status");
  EXPECT_EQ((*md)[0].second, "0");
  EXPECT_EQ(PercentDecodeGrpcMessage("50%zz%4"), "50%zz%4");
}

}  // namespace
}  // namespace squeeze::grpcweb
