// Coordinator::GrantBlobs: a tenant's blob grants are written in one SQLite
// transaction, so a failure part-way grants nothing. The failure is real: a
// trigger created on a second connection to the same jobs.db aborts the
// insert of one chosen digest.
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/sqlite_db.h"
#include "server/objectstore/local_object_store.h"
#include "tests/common/manual_clock.h"
#include "tests/common/test_coordinator.h"
#include "tests/common/temp_dirs.h"

namespace squeeze::server {
namespace {
namespace fs = std::filesystem;

class TenantGrantsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test_inputs::EmptyPerTestDir("grants_");
    CoordinatorOptions o = test_inputs::TestCoordinatorOptions(dir_, &clock_);
    auto c = test_inputs::OpenTestCoordinator(o);
    ASSERT_TRUE(c.ok()) << c.status();
    c_ = *std::move(c);
    auto side = SqliteDb::Open((dir_ / "jobs.db").string());
    ASSERT_TRUE(side.ok()) << side.status();
    side_ = *std::move(side);
  }
  void TearDown() override {
    side_.reset();
    c_.reset();
    fs::remove_all(dir_);
  }
  // Rows of tenant_blobs, read on the side connection.
  int64_t GrantRows() {
    auto s = side_->Prepare("SELECT COUNT(*) FROM tenant_blobs");
    EXPECT_TRUE(s.ok());
    EXPECT_TRUE(*s->Step());
    return s->Int(0);
  }
  void FailInsertsOf(const std::string& digest) {
    ASSERT_TRUE(side_
                    ->Exec("CREATE TRIGGER refuse_grant BEFORE INSERT ON tenant_blobs WHEN NEW.digest = '" + digest +
                           "' BEGIN SELECT RAISE(ABORT, 'injected grant failure'); END")
                    .ok());
  }

  static std::string Digest(char c) { return std::string(64, c); }

  fs::path dir_;
  test_inputs::ManualClock clock_;
  std::unique_ptr<Coordinator> c_;
  std::unique_ptr<SqliteDb> side_;
};

TEST_F(TenantGrantsTest, GrantsEveryDigestAndIsIdempotent) {
  const std::vector<std::string> digests = {Digest('a'), Digest('b'), Digest('c')};
  ASSERT_TRUE(c_->GrantBlobs("team-a", digests).ok());
  ASSERT_TRUE(c_->GrantBlobs("team-a", digests).ok());  // again: no duplicate rows, no error
  EXPECT_EQ(GrantRows(), 3);
  for (const std::string& d : digests) {
    EXPECT_TRUE(*c_->TenantHasBlob("team-a", d)) << d;
    EXPECT_FALSE(*c_->TenantHasBlob("team-b", d)) << d;
  }
  ASSERT_TRUE(c_->GrantBlobs("team-b", {}).ok());  // nothing to grant
  EXPECT_EQ(GrantRows(), 3);
}

TEST_F(TenantGrantsTest, AFailurePartWayGrantsNothing) {
  FailInsertsOf(Digest('c'));
  const std::vector<std::string> digests = {Digest('a'), Digest('b'), Digest('c'), Digest('d')};
  absl::Status s = c_->GrantBlobs("team-a", digests);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("injected grant failure"), std::string::npos) << s;
  // a and b were inserted before c failed: rolled back with the transaction.
  EXPECT_EQ(GrantRows(), 0);
  for (const std::string& d : digests) EXPECT_FALSE(*c_->TenantHasBlob("team-a", d)) << d;
  // The connection is usable afterwards (no transaction left open).
  ASSERT_TRUE(side_->Exec("DROP TRIGGER refuse_grant").ok());
  ASSERT_TRUE(c_->GrantBlobs("team-a", digests).ok());
  EXPECT_EQ(GrantRows(), 4);
}

}  // namespace
}  // namespace squeeze::server
