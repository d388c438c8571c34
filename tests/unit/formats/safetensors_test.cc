#include "workers/engine/formats/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/unit/formats/test_util.h"
#include "workers/engine/core/half.h"

namespace squeeze {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::FreshTestDir;
using testing_util::MakeSafetensors;
using testing_util::ReadBytes;
using testing_util::WriteBytes;

// A view owning `bytes` with the given dtype and shape.
TensorView BytesView(DType dtype, std::vector<int64_t> shape, std::string bytes) {
  auto buf = std::make_shared<std::string>(std::move(bytes));
  TensorView v;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = buf->data();
  v.nbytes = buf->size();
  v.owner = buf;
  return v;
}

std::string AsBytes(const TensorView& v) { return std::string(static_cast<const char*>(v.data), v.nbytes); }

TEST(SafetensorsTest, RoundTripsEveryDtypeBitExact) {
  const std::string path = FreshTestDir() + "/all.safetensors";
  std::map<std::string, TensorView> tensors;
  const DType all[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                       DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};
  uint32_t seed = 1;
  for (DType d : all) {
    const std::vector<int64_t> shape = {3, 5};
    std::string bytes(15 * DTypeSize(d), '\0');
    std::mt19937 rng(seed++);
    for (char& c : bytes) c = static_cast<char>(rng() & (d == DType::kBool ? 1 : 0xff));
    tensors[absl::StrCat("t_", DTypeName(d))] = BytesView(d, shape, bytes);
  }
  tensors["scalar"] = BytesView(DType::kF32, {}, std::string("\x00\x00\x80\x3f", 4));
  tensors["empty"] = BytesView(DType::kF32, {0, 7}, "");
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "hello"}};
  ASSERT_TRUE(WriteSafetensorsMap(path, tensors, meta).ok());

  auto st = ReadSafetensors(path);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->metadata, meta);
  ASSERT_EQ(st->tensors.size(), tensors.size());
  for (const auto& [name, want] : tensors) {
    SCOPED_TRACE(name);
    const TensorView& got = st->tensors.at(name);
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_EQ(AsBytes(got), AsBytes(want));
    EXPECT_NE(got.owner, nullptr);
  }
  EXPECT_EQ(st->tensors.at("scalar").numel(), 1);
}

TEST(SafetensorsTest, ViewsOutliveTheFileStruct) {
  const std::string path = FreshTestDir() + "/a.safetensors";
  ASSERT_TRUE(WriteSafetensorsMap(path, {{"x", OwnedF32({1, 2, 3}, {3})}}).ok());
  TensorView kept;
  {
    auto st = ReadSafetensors(path);
    ASSERT_TRUE(st.ok());
    kept = st->tensors.at("x");
  }
  auto v = ToFloat32(kept);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, (std::vector<float>{1, 2, 3}));
}

TEST(SafetensorsTest, DeterministicLayoutSortedAndPadded) {
  const std::string dir = FreshTestDir();
  std::vector<SafetensorsEntry> entries = {
      StoredAs("zeta", OwnedF32({1, 2, 3}, {3})),
      StoredAs("alpha", OwnedF32({4, 5}, {2})),
      StoredAs("mid", BytesView(DType::kU8, {3}, "abc")),
  };
  ASSERT_TRUE(WriteSafetensors(dir + "/a.safetensors", entries, {{"format", "pt"}}).ok());
  std::reverse(entries.begin(), entries.end());
  ASSERT_TRUE(WriteSafetensors(dir + "/b.safetensors", entries, {{"format", "pt"}}).ok());
  const std::string a = ReadBytes(dir + "/a.safetensors");
  EXPECT_EQ(a, ReadBytes(dir + "/b.safetensors"));  // input order does not matter

  uint64_t n = 0;
  std::memcpy(&n, a.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = a.substr(8, n);
  EXPECT_EQ(header.find("__metadata__"), 2u);  // metadata first: {"__metadata__":...
  EXPECT_LT(header.find("alpha"), header.find("mid"));
  EXPECT_LT(header.find("mid"), header.find("zeta"));
  // Data in name order: alpha (8 bytes), mid (3), zeta (12).
  const std::string data = a.substr(8 + n);
  ASSERT_EQ(data.size(), 8u + 3u + 12u);
  float f;
  std::memcpy(&f, data.data(), 4);
  EXPECT_EQ(f, 4.0f);
  EXPECT_EQ(data.substr(8, 3), "abc");
  std::memcpy(&f, data.data() + 11, 4);
  EXPECT_EQ(f, 1.0f);
  // Padding is spaces and the header is still valid JSON.
  EXPECT_TRUE(nlohmann::json::accept(header));
  const size_t close = header.rfind('}');
  EXPECT_EQ(header.substr(close + 1), std::string(header.size() - close - 1, ' '));
}

TEST(SafetensorsTest, ConvertsFloatsWhileWriting) {
  const std::string dir = FreshTestDir();
  // More than one conversion chunk (65536 elements).
  const std::vector<float> values = testing_util::RandomFloats(70000, 7);
  for (DType d : {DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(std::string(DTypeName(d)));
    const std::string path = absl::StrCat(dir, "/", DTypeName(d), ".safetensors");
    ASSERT_TRUE(WriteSafetensors(path, {StoredAs("w", OwnedF32(values, {700, 100}), d)}).ok());
    auto st = ReadSafetensors(path);
    ASSERT_TRUE(st.ok()) << st.status();
    const TensorView& v = st->tensors.at("w");
    EXPECT_EQ(v.dtype, d);
    EXPECT_EQ(v.shape, (std::vector<int64_t>{700, 100}));
    auto back = ToFloat32(v);
    ASSERT_TRUE(back.ok());
    for (size_t i = 0; i < values.size(); ++i) {
      const float want =
          d == DType::kF16 ? F16ToFloat(FloatToF16(values[i])) : Bf16ToFloat(FloatToBf16(values[i]));
      ASSERT_EQ((*back)[i], want) << i;
    }
  }
}

TEST(SafetensorsTest, WriterRejectsBadInput) {
  const std::string dir = FreshTestDir();
  TensorView wrong = OwnedF32({1, 2, 3}, {2, 2});  // 3 values for 4 elements
  absl::Status s = WriteSafetensorsMap(dir + "/x.safetensors", {{"bad", wrong}});
  EXPECT_THAT(s.message(), AllOf(HasSubstr("x.safetensors"), HasSubstr("bad"), HasSubstr("[2, 2]")));
  s = WriteSafetensors(dir + "/y.safetensors",
                       std::vector<SafetensorsEntry>{
                           StoredAs("i", BytesView(DType::kI32, {1}, std::string(4, '\0')), DType::kF16)});
  EXPECT_THAT(s.message(), AllOf(HasSubstr("tensor i"), HasSubstr("cannot convert I32 to F16")));
  s = WriteSafetensors(
      dir + "/z.safetensors",
      std::vector<SafetensorsEntry>{StoredAs("a", OwnedF32({1}, {1})), StoredAs("a", OwnedF32({2}, {1}))});
  EXPECT_THAT(s.message(), HasSubstr("tensor a given twice"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.safetensors"));
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // no temporary files left behind
}

// ---- Malformed files: each gives a specific message naming file and tensor.

class MalformedTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = FreshTestDir(); }
  absl::Status Read(const std::string& bytes) {
    const std::string path = dir_ + "/bad.safetensors";
    WriteBytes(path, bytes);
    return ReadSafetensors(path).status();
  }
  std::string dir_;
};

TEST_F(MalformedTest, TooShortForLength) {
  absl::Status s = Read("abc");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("bad.safetensors"), HasSubstr("3 bytes, too short")));
}

TEST_F(MalformedTest, HeaderLengthBeyondFile) {
  std::string bytes = MakeSafetensors("{}", "");
  bytes[0] = 100;  // claims a 100-byte header; the file has 2
  EXPECT_THAT(Read(bytes).message(),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("header length 100 exceeds the file size")));
}

TEST_F(MalformedTest, AbsurdHeaderLength) {
  std::string bytes = MakeSafetensors("{}", "");
  bytes[7] = 0x10;  // ~1.15e18
  EXPECT_THAT(Read(bytes).message(), HasSubstr("exceeds the limit of 100000000 bytes"));
}

TEST_F(MalformedTest, InvalidJson) {
  EXPECT_THAT(Read(MakeSafetensors("{\"a\": [", "")).message(),
              AllOf(HasSubstr("bad.safetensors"), HasSubstr("header is not valid JSON")));
  EXPECT_THAT(Read(MakeSafetensors("[1, 2]", "")).message(), HasSubstr("header is not a JSON object"));
}

TEST_F(MalformedTest, UnknownDtype) {
  absl::Status s = Read(MakeSafetensors(
      R"({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", std::string(2, '\0')));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("bad.safetensors: tensor w"), HasSubstr("F8_E4M3")));
}

TEST_F(MalformedTest, ShapeDoesNotMatchOffsets) {
  absl::Status s = Read(MakeSafetensors(
      R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", std::string(20, '\0')));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("tensor w"), HasSubstr("needs 24 bytes"), HasSubstr("span 20")));
}

TEST_F(MalformedTest, NegativeAndOverflowingShapes) {
  EXPECT_THAT(
      Read(MakeSafetensors(R"({"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 0]}})", ""))
          .message(),
      AllOf(HasSubstr("tensor w"), HasSubstr("negative dimension")));
  EXPECT_THAT(Read(MakeSafetensors(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296],)"
                                   R"( "data_offsets": [0, 0]}})",
                                   ""))
                  .message(),
              AllOf(HasSubstr("tensor w"), HasSubstr("overflows")));
  EXPECT_THAT(Read(MakeSafetensors(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})",
                                   std::string(4, '\0')))
                  .message(),
              HasSubstr("non-integer dimension"));
}

TEST_F(MalformedTest, OffsetsPastTheEnd) {
  absl::Status s = Read(MakeSafetensors(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
                                        std::string(8, '\0')));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("tensor w"), HasSubstr("run past the end of the data (8 bytes")));
}

TEST_F(MalformedTest, OverlappingOffsets) {
  absl::Status s = Read(MakeSafetensors(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                                        R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                        std::string(12, '\0')));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("tensor b"), HasSubstr("overlap tensor a")));
}

TEST_F(MalformedTest, GapAndTrailingBytes) {
  absl::Status s = Read(MakeSafetensors(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                        std::string(8, '\0')));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("tensor a"), HasSubstr("gap of 4 bytes")));
  s = Read(MakeSafetensors(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                           std::string(8, '\0')));
  EXPECT_THAT(s.message(), HasSubstr("4 trailing bytes belong to no tensor"));
}

TEST_F(MalformedTest, BadFieldsAndMetadata) {
  EXPECT_THAT(Read(MakeSafetensors(R"({"a": {"dtype": "F32", "shape": [1]}})", "")).message(),
              AllOf(HasSubstr("tensor a"), HasSubstr("data_offsets")));
  EXPECT_THAT(Read(MakeSafetensors(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})",
                                   std::string(4, '\0')))
                  .message(),
              HasSubstr("reversed"));
  EXPECT_THAT(Read(MakeSafetensors(R"({"__metadata__": {"k": 1}})", "")).message(),
              HasSubstr("__metadata__ value for \"k\" is not a string"));
  EXPECT_THAT(Read(MakeSafetensors(R"({"a": 3})", "")).message(),
              HasSubstr("tensor a: entry is not a JSON object"));
}

TEST_F(MalformedTest, TruncatedRealFile) {
  const std::string path = dir_ + "/good.safetensors";
  ASSERT_TRUE(
      WriteSafetensorsMap(path, {{"a", OwnedF32({1, 2, 3, 4}, {4})}, {"b", OwnedF32({5, 6}, {2})}}).ok());
  const std::string bytes = ReadBytes(path);
  absl::Status s = Read(bytes.substr(0, bytes.size() - 4));
  // b is last in the data buffer (name order), so it is the one cut off.
  EXPECT_THAT(s.message(), AllOf(HasSubstr("bad.safetensors: tensor b"), HasSubstr("file truncated?")));
  s = Read(bytes.substr(0, 20));  // cut inside the header
  EXPECT_THAT(s.message(), HasSubstr("exceeds the file size"));
}

// Random corruption of a valid file never crashes the reader: it either
// parses (and then every view lies inside the file) or returns an error.
TEST(SafetensorsTest, CorruptedFilesNeverCrash) {
  const std::string dir = FreshTestDir();
  const std::string path = dir + "/good.safetensors";
  ASSERT_TRUE(WriteSafetensors(path,
                               std::vector<SafetensorsEntry>{
                                   StoredAs("a.weight", OwnedF32(testing_util::RandomFloats(12, 1), {3, 4})),
                                   StoredAs("b", OwnedF32({1, 2}, {2}), DType::kBF16),
                                   StoredAs("c", BytesView(DType::kU8, {5}, "hello"))},
                               {{"format", "pt"}})
                  .ok());
  const std::string good = ReadBytes(path);
  std::mt19937 rng(1234);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % bytes.size();
      switch (rng() % 4) {
        case 0:
          bytes[pos] = static_cast<char>(rng());
          break;  // random byte
        case 1:
          bytes[pos] = "0123456789-[]{},:\"e "[rng() % 20];
          break;  // JSON-ish byte
        case 2:
          bytes.resize(pos);
          break;  // truncate
        case 3:
          bytes.insert(pos, 1, static_cast<char>('0' + rng() % 10));
          break;  // insert digit
      }
      if (bytes.empty()) break;
    }
    auto owner = std::make_shared<std::string>(bytes);
    const auto* base = reinterpret_cast<const uint8_t*>(owner->data());
    auto st = ParseSafetensors("fuzz", base, owner->size(), owner);
    if (!st.ok()) {
      ++rejected;
      EXPECT_THAT(st.status().message(), HasSubstr("fuzz"));
      continue;
    }
    ++parsed;
    for (const auto& [name, v] : st->tensors) {
      const auto* p = static_cast<const uint8_t*>(v.data);
      ASSERT_GE(p, base);
      ASSERT_LE(p + v.nbytes, base + owner->size()) << name;
      ASSERT_EQ(static_cast<size_t>(v.numel()) * DTypeSize(v.dtype), v.nbytes) << name;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(parsed + rejected, 2000);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto st = ReadSafetensors("/nonexistent/dir/x.safetensors");
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(), HasSubstr("/nonexistent/dir/x.safetensors"));
}

}  // namespace
}  // namespace squeeze
