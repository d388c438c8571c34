// S3ObjectStore against a real S3-protocol server on loopback (npm s3rver
// behind an aws4 SigV4 check, see s3_test_server.h): round trip, multipart,
// auth errors, read verification, and a server killed in the middle of a
// multipart upload.
#include "server/objectstore/s3_object_store.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/objectstore/open_object_store.h"
#include "server/objectstore/sha256.h"
#include "tests/common/temp_dirs.h"
#include "tests/unit/objectstore/s3_test_server.h"

namespace squeeze::store {
namespace {

using ::testing::HasSubstr;
using test_s3::S3TestServer;

constexpr char kBucket[] = "squeeze-test";
constexpr int64_t kMiB = int64_t{1} << 20;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

S3Options OptionsFor(const S3TestServer& server) {
  S3Options o;
  o.endpoint = server.endpoint();
  o.bucket = kBucket;
  o.access_key_id = S3TestServer::kAccessKey;
  o.secret_access_key = S3TestServer::kSecret;
  o.part_size_bytes = 5 * kMiB;  // S3's minimum, so tests stay small
  o.multipart_threshold_bytes = 5 * kMiB;
  o.initial_backoff_ms = 50;
  o.max_backoff_ms = 400;
  o.spool_dir = ::testing::TempDir();
  return o;
}

// Writes `bytes` through a BlobWriter in 1 MiB appends.
absl::StatusOr<std::string> PutInPieces(ObjectStore& store, const std::string& bytes) {
  absl::StatusOr<std::unique_ptr<BlobWriter>> w = store.NewBlob();
  if (!w.ok()) return w.status();
  for (size_t off = 0; off < bytes.size(); off += kMiB) {
    if (absl::Status s = (*w)->Append(absl::string_view(bytes).substr(off, kMiB)); !s.ok()) return s;
  }
  return (*w)->Commit();
}

// One server for the tests that do not restart it.
class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test_s3::WhyNoS3Server().empty()) return;
    const std::string dir = ::testing::TempDir() + "/s3_shared_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    server_ = new S3TestServer(dir, {kBucket});
    if (!server_->Start()) {
      ADD_FAILURE() << "s3_server.js did not start:\n" << server_->LogText();
      delete server_;
      server_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (const std::string why = test_s3::WhyNoS3Server(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_NE(server_, nullptr);
  }
  static S3TestServer* server_;
};
S3TestServer* S3StoreTest::server_ = nullptr;

TEST_F(S3StoreTest, PutGetContainsListDeleteRoundTrip) {
  S3Options o = OptionsFor(*server_);
  o.key_prefix = "roundtrip/";
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string a = "hello, bucket";
  const std::string b = RandomBytes(3000, 1);
  absl::StatusOr<std::string> da = (*store)->Put(a);
  absl::StatusOr<std::string> db = (*store)->Put(b);
  ASSERT_TRUE(da.ok()) << da.status();
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*da, Sha256Hex(a));
  EXPECT_EQ(*db, Sha256Hex(b));
  EXPECT_TRUE((*store)->Contains(*da));
  EXPECT_EQ(*(*store)->Size(*db), 3000);
  EXPECT_EQ(*(*store)->Get(*da), a);
  EXPECT_EQ(*(*store)->Get(*db), b);
  EXPECT_EQ(*(*store)->ReadRange(*db, 100, 50), b.substr(100, 50));
  EXPECT_EQ(*(*store)->ReadRange(*db, 2990, 100), b.substr(2990));  // clipped at the end
  EXPECT_EQ(*(*store)->ReadRange(*db, 3000, 10), "");               // at the end
  // Putting the same bytes again gives the same name (no second object).
  EXPECT_EQ(*(*store)->Put(a), *da);
  absl::StatusOr<std::vector<std::string>> listed = (*store)->ListDigests();
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> want = {*da, *db};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*listed, want);
  // The objects are named by prefix + digest in the bucket.
  EXPECT_EQ((*store)->KeyFor(*da), "roundtrip/" + *da);

  ASSERT_TRUE((*store)->Delete(*da).ok());
  EXPECT_FALSE((*store)->Contains(*da));
  EXPECT_EQ((*store)->Size(*da).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Get(*da).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*store)->Delete(*da).ok());  // absent: not an error
  EXPECT_EQ(*(*store)->ListDigests(), std::vector<std::string>{*db});
  EXPECT_EQ((*store)->Size("not-a-digest").status().code(), absl::StatusCode::kInvalidArgument);
  // A declared digest that does not match stores nothing.
  absl::StatusOr<std::unique_ptr<BlobWriter>> w = (*store)->NewBlob();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("xyz").ok());
  EXPECT_EQ((*w)->Commit(*db).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE((*store)->Contains(Sha256Hex("xyz")));
}

TEST_F(S3StoreTest, BlobOverTheThresholdGoesUpInParts) {
  S3Options o = OptionsFor(*server_);
  o.key_prefix = "multipart/";
  std::vector<std::pair<int, int>> parts_seen;
  o.after_part_uploaded = [&](int part, int parts) { parts_seen.emplace_back(part, parts); };
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string big = RandomBytes(11 * kMiB + 123, 2);
  absl::StatusOr<std::string> d = PutInPieces(**store, big);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Sha256Hex(big));
  // 5 MiB + 5 MiB + (1 MiB + 123 B).
  EXPECT_EQ(parts_seen, (std::vector<std::pair<int, int>>{{1, 3}, {2, 3}, {3, 3}}));
  EXPECT_EQ(*(*store)->Size(*d), static_cast<int64_t>(big.size()));
  absl::StatusOr<std::string> back = (*store)->Get(*d);  // verified against the digest
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == big);
  // Streamed to a file in 1 MiB ranges.
  const std::string file = ::testing::TempDir() + "/s3_big_copy";
  ASSERT_TRUE((*store)->CopyToFile(*d, file).ok());
  EXPECT_EQ(*Sha256File(file), *d);
  // A blob exactly at the threshold is one PUT. Past the writer's 4 MiB memory
  // cap it was spooled to disk first, and reads back whole.
  parts_seen.clear();
  const std::string at_threshold = RandomBytes(5 * kMiB, 3);
  absl::StatusOr<std::string> d5 = PutInPieces(**store, at_threshold);
  ASSERT_TRUE(d5.ok()) << d5.status();
  EXPECT_TRUE(parts_seen.empty());
  absl::StatusOr<std::string> back5 = (*store)->Get(*d5);
  ASSERT_TRUE(back5.ok()) << back5.status();
  EXPECT_TRUE(*back5 == at_threshold);
}

TEST_F(S3StoreTest, ContentThatDoesNotHashToItsNameIsDataLoss) {
  S3Options o = OptionsFor(*server_);
  o.key_prefix = "corrupt/";
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string digest = *(*store)->Put("the real bytes");
  // Something else overwrites the object under that key (same length).
  ASSERT_TRUE((*store)->PutSmall(digest, "the fake bytes").ok());
  absl::StatusOr<std::string> got = (*store)->Get(digest);
  ASSERT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("corrupt/" + digest));
}

TEST_F(S3StoreTest, WrongSecretIsAClearAuthenticationError) {
  S3Options o = OptionsFor(*server_);
  o.secret_access_key = "not-the-secret";
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kPermissionDenied) << store.status();
  const std::string msg(store.status().message());
  EXPECT_THAT(msg, HasSubstr(server_->endpoint()));
  EXPECT_THAT(msg, HasSubstr(std::string("bucket \"") + kBucket + "\""));
  EXPECT_THAT(msg, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(msg, HasSubstr("AWS_SECRET_ACCESS_KEY"));

  o = OptionsFor(*server_);
  o.access_key_id = "nobody";
  store = S3ObjectStore::Open(o);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kPermissionDenied) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("InvalidAccessKeyId"));
}

TEST_F(S3StoreTest, MissingBucketIsNamed) {
  S3Options o = OptionsFor(*server_);
  o.bucket = "no-such-bucket";
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kNotFound) << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("s3 bucket \"no-such-bucket\" does not exist at " + server_->endpoint()));
}

TEST_F(S3StoreTest, OpenObjectStorePicksTheBackendAndReadsCredentialsFromTheEnvironment) {
  ObjectStoreConfig c;
  c.backend = "s3";
  c.s3 = OptionsFor(*server_);
  c.s3.access_key_id.clear();
  c.s3.secret_access_key.clear();
  ::setenv("AWS_ACCESS_KEY_ID", S3TestServer::kAccessKey, 1);
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  absl::StatusOr<std::unique_ptr<ObjectStore>> s = OpenObjectStore(c);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("AWS_SECRET_ACCESS_KEY"));
  ::setenv("AWS_SECRET_ACCESS_KEY", S3TestServer::kSecret, 1);
  s = OpenObjectStore(c);
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string d = *(*s)->Put("via the factory");
  EXPECT_EQ(*(*s)->Get(d), "via the factory");

  c.backend = "local";
  c.local_root = ::testing::TempDir() + "/factory_local";
  s = OpenObjectStore(c);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE((*s)->Contains(d));
  c.backend = "gcs";
  EXPECT_THAT(std::string(OpenObjectStore(c).status().message()), HasSubstr("\"gcs\" is unknown"));
}

TEST(S3Options, BadFieldsAreNamed) {
  S3Options o;
  o.endpoint = "http://127.0.0.1:9000";
  o.bucket = "b-1";
  o.access_key_id = "k";
  o.secret_access_key = "s";
  EXPECT_TRUE(ValidateS3Options(o).ok());
  auto msg = [](const S3Options& x) { return std::string(ValidateS3Options(x).message()); };
  S3Options bad = o;
  bad.endpoint = "127.0.0.1:9000";
  EXPECT_THAT(msg(bad), HasSubstr("s3 option endpoint"));
  bad = o;
  bad.bucket = "Has_Upper";
  EXPECT_THAT(msg(bad), HasSubstr("s3 option bucket"));
  bad = o;
  bad.part_size_bytes = 4 * kMiB;
  EXPECT_THAT(msg(bad), HasSubstr("at least 5 MiB"));
  bad = o;
  bad.key_prefix = "a b/";
  EXPECT_THAT(msg(bad), HasSubstr("s3 option key_prefix"));
  bad = o;
  bad.secret_access_key.clear();
  EXPECT_THAT(msg(bad), HasSubstr("AWS_SECRET_ACCESS_KEY"));
}

// A server killed after part 1 of 3 and back on the same port and directory
// while the client is backing off: the upload retries and completes.
TEST(S3StoreRestart, ServerRestartedMidMultipartUploadRetriesAndCompletes) {
  if (const std::string why = test_s3::WhyNoS3Server(); !why.empty()) GTEST_SKIP() << why;
  const std::string dir = test_inputs::EmptyPerTestDir("s3_restart_").string() + "/data";
  S3TestServer server(dir, {kBucket});
  ASSERT_TRUE(server.Start()) << server.LogText();
  S3Options o = OptionsFor(server);
  // Backoff 100, 200, 400, 800, 1600, 2000 ... ms: ~40 s of retries, ample for
  // node to start s3rver again even on a heavily loaded machine (the upload
  // goes on as soon as it is back, so a quick restart costs a quick test).
  o.max_attempts = 24;
  o.initial_backoff_ms = 100;
  o.max_backoff_ms = 2000;
  std::thread restarter;
  std::atomic<bool> restarted{false};
  o.after_part_uploaded = [&](int part, int) {
    if (part != 1) return;
    server.Kill();
    // Starting node takes far longer than the client's first retry, so the
    // next part meets a dead port at least once.
    restarter = std::thread([&] { restarted = server.Start(); });
  };
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string big = RandomBytes(11 * kMiB, 4);
  absl::StatusOr<std::string> d = PutInPieces(**store, big);
  if (restarter.joinable()) restarter.join();
  ASSERT_TRUE(restarted) << "the server did not come back on its port:\n" << server.LogText();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_GT((*store)->client().retries(), 0) << "the dead port was never hit";
  absl::StatusOr<std::string> back = (*store)->Get(*d);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == big);
}

// A server that stays down past the retries: Commit fails naming the endpoint
// and the part, and once the server is back nothing of the blob is visible.
TEST(S3StoreRestart, ServerDownMidMultipartUploadFailsCleanly) {
  if (const std::string why = test_s3::WhyNoS3Server(); !why.empty()) GTEST_SKIP() << why;
  const std::string dir = test_inputs::EmptyPerTestDir("s3_down_").string() + "/data";
  S3TestServer server(dir, {kBucket});
  ASSERT_TRUE(server.Start()) << server.LogText();
  S3Options o = OptionsFor(server);
  o.max_attempts = 3;
  o.after_part_uploaded = [&](int part, int) {
    if (part == 1) server.Kill();
  };
  absl::StatusOr<std::unique_ptr<S3ObjectStore>> store = S3ObjectStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string big = RandomBytes(11 * kMiB, 5);
  absl::StatusOr<std::string> d = PutInPieces(**store, big);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kUnavailable) << d.status();
  const std::string msg(d.status().message());
  EXPECT_THAT(msg, HasSubstr("failed at part 2/3"));
  EXPECT_THAT(msg, HasSubstr(server.endpoint()));
  EXPECT_THAT(msg, HasSubstr("after 3 attempts"));

  ASSERT_TRUE(server.Start()) << server.LogText();
  EXPECT_FALSE((*store)->Contains(Sha256Hex(big)));
  absl::StatusOr<std::vector<std::string>> listed = (*store)->ListDigests();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());
}

}  // namespace
}  // namespace squeeze::store
