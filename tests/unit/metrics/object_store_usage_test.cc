// LocalObjectStore::Usage (squeeze_objectstore_* metrics): counted at Open,
// updated by commits, unchanged by deduplicated puts and abandoned writers.
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "server/objectstore/local_object_store.h"

namespace squeeze::store {
namespace {
namespace fs = std::filesystem;

TEST(ObjectStoreUsage, CountsCommittedBlobsOnly) {
  const fs::path root = fs::path(::testing::TempDir()) / ("usage_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto s = LocalObjectStore::Open(root.string());
  ASSERT_TRUE(s.ok()) << s.status();
  auto u = (*s)->Usage();
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->blobs, 0);
  EXPECT_EQ(u->bytes, 0);
  ASSERT_TRUE((*s)->Put("hello").ok());
  ASSERT_TRUE((*s)->Put(std::string(1000, 'x')).ok());
  ASSERT_TRUE((*s)->Put("hello").ok());  // deduplicated: no new blob
  {
    auto w = (*s)->NewBlob();  // a writer that never commits stores nothing
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("abandoned").ok());
  }
  {
    auto w = (*s)->NewBlob();  // a commit refused for a wrong digest stores nothing
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("data").ok());
    EXPECT_FALSE((*w)->Commit(std::string(64, 'a')).ok());
  }
  u = (*s)->Usage();
  EXPECT_EQ(u->blobs, 2);
  EXPECT_EQ(u->bytes, 1005);
  // A reopened store counts the same from disk.
  s->reset();
  auto again = LocalObjectStore::Open(root.string());
  ASSERT_TRUE(again.ok());
  u = (*again)->Usage();
  EXPECT_EQ(u->blobs, 2);
  EXPECT_EQ(u->bytes, 1005);
  fs::remove_all(root);
}

}  // namespace
}  // namespace squeeze::store
