#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/file_util.h"

namespace squeeze::store {
namespace {
namespace fs = std::filesystem;

class ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / ("objstore_" + std::to_string(::getpid()) + "_" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    auto s = LocalObjectStore::Open(root_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void TearDown() override { fs::remove_all(root_); }
  size_t CountFiles(const std::string& sub) {
    size_t n = 0;
    for (auto& e : fs::recursive_directory_iterator(root_ / sub)) n += e.is_regular_file();
    return n;
  }
  fs::path root_;
  std::unique_ptr<LocalObjectStore> store_;
};

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.FinalHex(), Sha256Hex("abc"));
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("x")));
  EXPECT_FALSE(IsSha256Hex("ABC"));
}

TEST_F(ObjectStoreTest, PutGetIsContentAddressedAndDeduplicated) {
  auto d1 = store_->Put("hello world");
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(*d1, Sha256Hex("hello world"));
  EXPECT_TRUE(store_->Contains(*d1));
  auto d2 = store_->Put("hello world");
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(*d1, *d2);
  EXPECT_EQ(CountFiles("blobs"), 1u);
  EXPECT_EQ(CountFiles("tmp"), 0u);
  EXPECT_EQ(*store_->Get(*d1), "hello world");
  EXPECT_EQ(*store_->ReadRange(*d1, 6, 100), "world");
  EXPECT_EQ(*store_->ReadRange(*d1, 11, 5), "");
  EXPECT_EQ(*store_->Size(*d1), 11);
}

TEST_F(ObjectStoreTest, UncommittedWriterLeavesNothing) {
  {
    auto w = store_->NewBlob();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("partial data").ok());
    EXPECT_EQ(CountFiles("tmp"), 1u);
  }
  EXPECT_EQ(CountFiles("tmp"), 0u);
  EXPECT_FALSE(store_->Contains(Sha256Hex("partial data")));
}

TEST_F(ObjectStoreTest, DigestMismatchStoresNothing) {
  auto w = store_->NewBlob();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("abc").ok());
  auto d = (*w)->Commit(Sha256Hex("abd"));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss);
  w->reset();
  EXPECT_FALSE(store_->Contains(Sha256Hex("abc")));
  EXPECT_EQ(CountFiles("blobs"), 0u);
}

TEST_F(ObjectStoreTest, MissingAndMalformedDigests) {
  EXPECT_EQ(store_->Size(Sha256Hex("nope")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Size("../etc/passwd").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->Contains("../etc/passwd"));
}

TEST_F(ObjectStoreTest, OpenClearsCrashedWriters) {
  std::ofstream(root_ / "tmp" / "blob.999.0") << "junk";
  auto again = LocalObjectStore::Open(root_.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(CountFiles("tmp"), 0u);
}

TEST_F(ObjectStoreTest, ReadOnlyOpenLeavesUploadsInProgressAndCreatesNothing) {
  const std::string digest = *store_->Put("stored");
  auto w = store_->NewBlob();  // a live writer's bytes in tmp/
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("in progress").ok());
  LocalStoreOptions ro;
  ro.read_only = true;
  auto reader = LocalObjectStore::Open(root_.string(), ro);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(CountFiles("tmp"), 1u);
  EXPECT_EQ(*(*reader)->Get(digest), "stored");
  EXPECT_EQ((*reader)->Usage()->blobs, 1);
  EXPECT_EQ((*reader)->NewBlob().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*w)->Commit("").ok());  // the writer finishes unharmed
  EXPECT_TRUE((*reader)->Contains(Sha256Hex("in progress")));
  // A missing store is an error, and stays missing.
  const fs::path none = root_ / "none";
  EXPECT_EQ(LocalObjectStore::Open(none.string(), ro).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(none));
}

TEST(Manifest, CanonicalJsonRoundTrips) {
  Manifest m;
  m.files.push_back({"b/model.safetensors", Sha256Hex("2"), 2});
  m.files.push_back({"a.json", Sha256Hex("1"), 1});
  const std::string json = m.ToJson();
  auto back = Manifest::FromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->files.size(), 2u);
  EXPECT_EQ(back->files[0].path, "a.json");  // sorted
  EXPECT_EQ(back->ToJson(), json);
  EXPECT_EQ(back->TotalBytes(), 3);
}

TEST(Manifest, RejectsEscapingPaths) {
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "./a"}) {
    EXPECT_FALSE(ValidateRelativePath(bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateRelativePath("hf/config.json").ok());
  EXPECT_FALSE(Manifest::FromJson("{\"version\":1,\"files\":[{\"path\":\"../x\",\"sha256\":\"" +
                                  Sha256Hex("") + "\",\"size\":0}]}")
                   .ok());
  EXPECT_FALSE(Manifest::FromJson("not json").ok());
}

TEST_F(ObjectStoreTest, PutTreeThenMaterializeGivesTheSameFiles) {
  const fs::path src = root_.string() + "_src";
  fs::create_directories(src / "sub");
  std::ofstream(src / "config.json") << "{\"dim\": 8}";
  std::ofstream(src / "sub" / "w.bin") << std::string(3 << 20, 'x');  // spans several 1 MiB reads
  auto digest = PutTree(*store_, src.string());
  ASSERT_TRUE(digest.ok()) << digest.status();
  auto again = PutTree(*store_, src.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*digest, *again);  // same tree, same name
  const fs::path out = root_.string() + "_out";
  ASSERT_TRUE(MaterializeTree(*store_, *digest, out.string()).ok());
  EXPECT_EQ(*ReadFileToString((out / "config.json").string()), "{\"dim\": 8}");
  EXPECT_EQ(*Sha256File((out / "sub" / "w.bin").string()), Sha256Hex(std::string(3 << 20, 'x')));
  fs::remove_all(src);
  fs::remove_all(out);
}

}  // namespace
}  // namespace squeeze::store
