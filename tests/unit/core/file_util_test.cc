#include "workers/engine/core/file_util.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "workers/engine/core/mapped_file.h"

namespace squeeze {
namespace {

std::string TempDir() {
  std::string dir = ::testing::TempDir() + "/file_util_test";
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(FileUtilTest, AtomicWriteThenReadAndMap) {
  const std::string path = TempDir() + "/a.bin";
  ASSERT_TRUE(WriteFileAtomically(path, "hello").ok());
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "hello");
  auto mapped = MappedFile::Open(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ((*mapped)->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*mapped)->data()), 5), "hello");
}

TEST(FileUtilTest, UncommittedWriterLeavesNothing) {
  const std::string dir = TempDir() + "/uncommitted";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    auto w = AtomicFileWriter::Create(dir + "/x");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Append("partial").ok());
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(FileUtilTest, UnnamedWriterCommitsUnderANameChosenLater) {
  const std::string dir = TempDir() + "/unnamed";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/tmp");
  auto w = AtomicFileWriter::CreateUnnamed(dir + "/tmp", 0444);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(w->Append("blob").ok());
  EXPECT_EQ(w->Commit().code(), absl::StatusCode::kFailedPrecondition);  // no name yet
  ASSERT_TRUE(w->CommitAs(dir + "/final").ok());
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/tmp"));
  EXPECT_EQ(*ReadFileToString(dir + "/final"), "blob");
  const auto perms = std::filesystem::status(dir + "/final").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::owner_write, std::filesystem::perms::none);
}

TEST(FileUtilTest, MissingFileIsNotFoundAndNamed) {
  auto r = ReadFileToString("/nonexistent/dir/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/dir/file"), std::string::npos);
  auto m = MappedFile::Open("/nonexistent/dir/file");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace squeeze
