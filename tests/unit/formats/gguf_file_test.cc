// GGUF container (formats/gguf.h): byte layout, metadata of every type,
// alignment, and the reader's validation of malformed files.
#include "workers/engine/formats/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/formats/test_util.h"

namespace squeeze {
namespace {

using ::testing::HasSubstr;

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void PutStr(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

absl::StatusOr<GgufFile> Parse(const std::string& bytes) {
  auto owner = std::make_shared<std::string>(bytes);
  return ParseGguf("test.gguf", reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), owner);
}

std::vector<GgufKV> AllTypesMetadata() {
  return {
      {"general.architecture", GgufValue::Str("llama")},
      {"t.u8", GgufValue::Int(GgufType::kUint8, 200)},
      {"t.i8", GgufValue::Int(GgufType::kInt8, -100)},
      {"t.u16", GgufValue::Int(GgufType::kUint16, 60000)},
      {"t.i16", GgufValue::Int(GgufType::kInt16, -30000)},
      {"t.u32", GgufValue::U32(4000000000u)},
      {"t.i32", GgufValue::I32(-2000000000)},
      {"t.f32", GgufValue::F32(1.5f)},
      {"t.bool", GgufValue::Bool(true)},
      {"t.u64", GgufValue::Int(GgufType::kUint64, int64_t{1} << 40)},
      {"t.i64", GgufValue::Int(GgufType::kInt64, -(int64_t{1} << 40))},
      {"t.f64", GgufValue::F64(-2.25)},
      {"t.strs", GgufValue::StrArray({"a", "", "\xE2\x96\x81hello"})},
      {"t.f32s", GgufValue::F32Array({0.5f, -1.0f})},
      {"t.i32s", GgufValue::IntArray(GgufType::kInt32, {1, -2, 3})},
      {"t.empty", GgufValue::IntArray(GgufType::kUint8, {})},
  };
}

TEST(GgufFileTest, HeaderBytesFollowTheSpecification) {
  std::vector<GgufTensorData> tensors = {{"w", {2}, GgmlType::kF32, std::string(8, '\x01')}};
  const std::string bytes = *SerializeGguf({{"general.architecture", GgufValue::Str("llama")}}, tensors);
  std::string want;
  want += "GGUF";
  Put<uint32_t>(want, 3);
  Put<uint64_t>(want, 1);  // tensors
  Put<uint64_t>(want, 1);  // kv
  PutStr(want, "general.architecture");
  Put<uint32_t>(want, 8);  // string
  PutStr(want, "llama");
  PutStr(want, "w");
  Put<uint32_t>(want, 1);  // n_dims
  Put<uint64_t>(want, 2);
  Put<uint32_t>(want, 0);  // F32
  Put<uint64_t>(want, 0);  // offset
  want.resize((want.size() + 31) / 32 * 32, '\0');
  want += std::string(8, '\x01');
  want.resize((want.size() + 31) / 32 * 32, '\0');
  EXPECT_EQ(bytes, want);
}

TEST(GgufFileTest, MetadataOfEveryTypeRoundTrips) {
  const std::vector<GgufKV> meta = AllTypesMetadata();
  auto f = Parse(*SerializeGguf(meta, {}));
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->metadata.size(), meta.size());
  for (size_t i = 0; i < meta.size(); ++i) {
    const GgufKV& got = f->metadata[i];
    EXPECT_EQ(got.key, meta[i].key);
    EXPECT_EQ(got.value.type, meta[i].value.type) << got.key;
    EXPECT_EQ(got.value.elem_type == meta[i].value.elem_type || !got.value.is_array(), true) << got.key;
    EXPECT_EQ(got.value.ints, meta[i].value.ints) << got.key;
    EXPECT_EQ(got.value.floats, meta[i].value.floats) << got.key;
    EXPECT_EQ(got.value.strings, meta[i].value.strings) << got.key;
  }
  EXPECT_EQ(*f->GetInt("t.u32"), 4000000000LL);
  EXPECT_EQ(*f->GetFloat("t.f64"), -2.25);
  EXPECT_TRUE(*f->GetBool("t.bool"));
  EXPECT_THAT(f->GetInt("t.f32").status().message(), HasSubstr("t.f32: is a float32, expected an integer"));
  EXPECT_THAT(f->GetString("t.strs").status().message(), HasSubstr("is an array"));
  EXPECT_EQ(*f->GetIntOr("absent", 7), 7);
}

TEST(GgufFileTest, TensorsAreAlignedAndReadBack) {
  std::vector<GgufTensorData> tensors = {
      {"a", {3}, GgmlType::kF32, std::string(12, '\x02')},
      {"b", {32, 2}, GgmlType::kQ8_0, std::string(68, '\x03')},
  };
  for (uint32_t alignment : {32u, 64u}) {
    auto f = Parse(*SerializeGguf({{"general.alignment", GgufValue::U32(alignment)}}, tensors));
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->alignment, alignment);
    ASSERT_EQ(f->tensors.size(), 2u);
    EXPECT_EQ(f->tensors[0].offset, 0u);
    EXPECT_EQ(f->tensors[1].offset, alignment);
    EXPECT_EQ(f->tensors[1].shape(), (std::vector<int64_t>{2, 32}));
    EXPECT_EQ(f->tensors[1].nbytes, 68u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->tensors[1].data), 68), tensors[1].bytes);
    const uint8_t* base = f->tensors[0].data;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->tensors[1].data) - reinterpret_cast<uintptr_t>(base), alignment);
  }
}

TEST(GgufFileTest, WriterRefusesInconsistentTensors) {
  EXPECT_THAT(SerializeGguf({}, {{"x", {31}, GgmlType::kQ4_0, std::string(18, 0)}}).status().message(),
              HasSubstr("multiple of its block size 32"));
  EXPECT_THAT(SerializeGguf({}, {{"x", {4}, GgmlType::kF32, std::string(15, 0)}}).status().message(),
              HasSubstr("has 15 bytes"));
  EXPECT_THAT(SerializeGguf({}, {{std::string(65, 'n'), {1}, GgmlType::kF32, std::string(4, 0)}}).status().message(),
              HasSubstr("1..64 bytes"));
  EXPECT_THAT(SerializeGguf({{"general.alignment", GgufValue::U32(24)}}, {}).status().message(),
              HasSubstr("power of two"));
  EXPECT_THAT(SerializeGguf({{"k", GgufValue::U32(1)}, {"k", GgufValue::U32(2)}}, {}).status().message(),
              HasSubstr("repeated"));
}

TEST(GgufFileTest, WriteIsAtomicAndReadable) {
  const std::string dir = testing_util::FreshTestDir();
  const std::string path = dir + "/m.gguf";
  ASSERT_TRUE(WriteGguf(path, AllTypesMetadata(), {{"a", {3}, GgmlType::kF32, std::string(12, '\x02')}}).ok());
  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors.at(0).name, "a");
  // A failing write leaves the old file in place.
  EXPECT_FALSE(WriteGguf(path, {}, {{"x", {31}, GgmlType::kQ4_0, ""}}).ok());
  EXPECT_TRUE(ReadGguf(path).ok());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
}

// Malformed files: each is refused with a message naming what is wrong.
TEST(GgufFileTest, ReaderRejectsMalformedFiles) {
  const std::string good =
      *SerializeGguf({{"general.architecture", GgufValue::Str("llama")}},
                     {{"w", {32}, GgmlType::kQ4_0, std::string(18, '\x05')}});
  ASSERT_TRUE(Parse(good).ok());
  auto expect = [&](const std::string& bytes, const std::string& what) {
    auto f = Parse(bytes);
    EXPECT_FALSE(f.ok()) << what;
    EXPECT_THAT(f.status().message(), HasSubstr(what));
    EXPECT_THAT(f.status().message(), HasSubstr("test.gguf"));
  };
  expect("GGUX" + good.substr(4), "bad magic");
  {
    std::string b = good;
    b[4] = 1;
    expect(b, "version 1 is not supported");
  }
  for (size_t cut : {size_t{3}, size_t{20}, size_t{40}, size_t{60}, good.size() - 15}) {
    // (the last 14 bytes are padding after the 18-byte tensor)
    expect(good.substr(0, cut), cut < good.size() - 32 ? "truncated" : "beyond");
  }
  // Counts larger than the file.
  {
    std::string b = good;
    const uint64_t huge = uint64_t{1} << 60;
    std::memcpy(&b[16], &huge, 8);
    expect(b, "metadata_kv_count");
    b = good;
    std::memcpy(&b[8], &huge, 8);
    expect(b, "tensor_count");
  }
  // Hand-built: header + one KV.
  auto header = [](uint64_t n_tensors, uint64_t n_kv) {
    std::string h = "GGUF";
    Put<uint32_t>(h, 3);
    Put<uint64_t>(h, n_tensors);
    Put<uint64_t>(h, n_kv);
    return h;
  };
  {
    std::string b = header(0, 1);
    PutStr(b, "k");
    Put<uint32_t>(b, 77);
    Put<uint32_t>(b, 0);
    expect(b, "unknown value type 77");
  }
  {
    std::string b = header(0, 1);
    PutStr(b, "k");
    Put<uint32_t>(b, 9);
    Put<uint32_t>(b, 9);  // array of arrays
    Put<uint64_t>(b, 0);
    expect(b, "nested arrays");
  }
  {
    std::string b = header(0, 1);
    PutStr(b, "k");
    Put<uint32_t>(b, 9);
    Put<uint32_t>(b, 4);
    Put<uint64_t>(b, uint64_t{1} << 62);  // a huge array count
    expect(b, "needs more than");
  }
  {
    std::string b = header(0, 1);
    PutStr(b, "k");
    Put<uint32_t>(b, 8);
    Put<uint64_t>(b, 1000);  // string longer than the file
    expect(b, "string length 1000");
  }
  {
    std::string b = header(0, 2);
    for (int i = 0; i < 2; ++i) {
      PutStr(b, "dup");
      Put<uint32_t>(b, 4);
      Put<uint32_t>(b, 1);
    }
    expect(b, "key appears twice");
  }
  {
    std::string b = header(0, 1);
    PutStr(b, "general.alignment");
    Put<uint32_t>(b, 4);
    Put<uint32_t>(b, 48);
    expect(b, "48 is not a power of two >= 8");
  }
  // Tensor infos.
  auto tensor = [&](uint32_t n_dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    std::string b = header(1, 0);
    PutStr(b, "w");
    Put<uint32_t>(b, n_dims);
    for (uint64_t d : ne) Put<uint64_t>(b, d);
    Put<uint32_t>(b, type);
    Put<uint64_t>(b, offset);
    b.resize((b.size() + 31) / 32 * 32, '\0');
    b += std::string(64, '\0');
    return b;
  };
  EXPECT_TRUE(Parse(tensor(1, {32}, 2, 0)).ok());
  expect(tensor(5, {1, 1, 1, 1, 1}, 0, 0), "5 dimensions");
  expect(tensor(1, {0}, 0, 0), "is 0 or overflows");
  expect(tensor(2, {uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0), "overflows");
  expect(tensor(1, {32}, 13, 0), "Q5_K (13) is not supported");
  expect(tensor(1, {32}, 1234, 0), "unknown ggml type id 1234");
  expect(tensor(1, {31}, 2, 0), "not a multiple of the Q4_0 block size 32");
  expect(tensor(1, {8}, 0, 16), "not a multiple of the alignment");
  expect(tensor(1, {32}, 0, 32), "lie beyond");  // 128 bytes at 32 in a 64-byte data section
}

TEST(GgufFileTest, OverlappingTensorsAreRejected) {
  std::string b = "GGUF";
  Put<uint32_t>(b, 3);
  Put<uint64_t>(b, 2);
  Put<uint64_t>(b, 0);
  PutStr(b, "a");
  Put<uint32_t>(b, 1);
  Put<uint64_t>(b, 16);  // 64 bytes of F32
  Put<uint32_t>(b, 0);
  Put<uint64_t>(b, 0);
  PutStr(b, "b");
  Put<uint32_t>(b, 1);
  Put<uint64_t>(b, 8);
  Put<uint32_t>(b, 0);
  Put<uint64_t>(b, 32);  // inside a
  b.resize((b.size() + 31) / 32 * 32, '\0');
  b += std::string(128, '\0');
  auto f = Parse(b);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("tensor b: overlaps tensor a"));
}

}  // namespace
}  // namespace squeeze
