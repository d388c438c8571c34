// ChooseCheckpoint: a worker's own further checkpoint of the same run beats
// the coordinator's older one; anything else (another run, unreadable, not
// further) takes the fetched one.
#include "workers/worker/checkpoint_choice.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/common/temp_dirs.h"
#include "workers/engine/core/file_util.h"

namespace squeeze::worker {
namespace {
namespace fs = std::filesystem;

void WriteCheckpoint(const fs::path& dir, const std::string& model, int stage, int next_layer) {
  fs::create_directories(dir);
  const nlohmann::json j = {{"version", 1},
                            {"fingerprint", {{"model", model}, {"seed", 3}}},
                            {"stage", stage},
                            {"next_layer", next_layer},
                            {"modules", nlohmann::json::array()},
                            {"report", nlohmann::json::array()}};
  ASSERT_TRUE(WriteFileAtomically((dir / "checkpoint.json").string(), j.dump()).ok());
}

TEST(CheckpointChoice, KeepsTheFurtherLocalCheckpointOfTheSameRun) {
  const fs::path d = test_inputs::EmptyPerTestDir("ckchoice_");
  WriteCheckpoint(d / "local", "m1", 1, 2);
  WriteCheckpoint(d / "fetched", "m1", 0, 7);  // an earlier stage, however far into it
  EXPECT_EQ(ChooseCheckpoint((d / "local").string(), (d / "fetched").string()), CheckpointChoice::kLocal);
  WriteCheckpoint(d / "fetched", "m1", 1, 1);
  EXPECT_EQ(ChooseCheckpoint((d / "local").string(), (d / "fetched").string()), CheckpointChoice::kLocal);
  fs::remove_all(d);
}

TEST(CheckpointChoice, TakesTheFetchedOneOtherwise) {
  const fs::path d = test_inputs::EmptyPerTestDir("ckchoice_");
  const std::string local = (d / "local").string(), fetched = (d / "fetched").string();
  WriteCheckpoint(fetched, "m1", 1, 2);
  // No local checkpoint.
  EXPECT_EQ(ChooseCheckpoint(local, fetched), CheckpointChoice::kFetched);
  // Same position: the coordinator's (equal, and it is the shared one).
  WriteCheckpoint(local, "m1", 1, 2);
  EXPECT_EQ(ChooseCheckpoint(local, fetched), CheckpointChoice::kFetched);
  // Older local.
  WriteCheckpoint(local, "m1", 1, 1);
  EXPECT_EQ(ChooseCheckpoint(local, fetched), CheckpointChoice::kFetched);
  // Further, but another run's (the runner would refuse it).
  WriteCheckpoint(local, "other", 3, 0);
  EXPECT_EQ(ChooseCheckpoint(local, fetched), CheckpointChoice::kFetched);
  // A damaged local checkpoint.json.
  ASSERT_TRUE(WriteFileAtomically(local + "/checkpoint.json", "{\"version\":1,").ok());
  EXPECT_EQ(ChooseCheckpoint(local, fetched), CheckpointChoice::kFetched);
  EXPECT_FALSE(ReadCheckpointMark(local).has_value());
  auto mark = ReadCheckpointMark(fetched);
  ASSERT_TRUE(mark.has_value());
  EXPECT_EQ(mark->stage, 1);
  EXPECT_EQ(mark->next_layer, 2);
  fs::remove_all(d);
}

// A damaged checkpoint.json (wrong types) is "no usable mark", not a crash.
TEST(CheckpointChoice, WrongTypesInCheckpointJsonAreNoMark) {
  const fs::path d = test_inputs::EmptyPerTestDir("ckchoice_");
  fs::create_directories(d / "local");
  for (const char* text : {R"({"version":"1","fingerprint":{},"stage":1,"next_layer":2})",
                           R"({"version":1,"fingerprint":{},"stage":"1","next_layer":2})",
                           R"([1,2,3])", R"({"version":1.5})"}) {
    ASSERT_TRUE(WriteFileAtomically((d / "local" / "checkpoint.json").string(), text).ok());
    EXPECT_FALSE(ReadCheckpointMark((d / "local").string()).has_value()) << text;
  }
  fs::remove_all(d);
}

}  // namespace
}  // namespace squeeze::worker
