// Task names resolve against a run-time directory (flag or SQUEEZE_TASKS_DIR).
#include "workers/engine/eval/task_files.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace squeeze {
namespace {

using ::testing::HasSubstr;

TEST(TaskFilesTest, ResolvesNamesAgainstFlagThenEnvironment) {
  const std::string dir = ::testing::TempDir() + "/task_files_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/piqa.jsonl") << "{}\n";
  std::ofstream(dir + "/own.jsonl") << "{}\n";
  unsetenv(kTasksDirEnv);
  auto r = ResolveTaskFiles("piqa, " + dir + "/own.jsonl", dir);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, (std::vector<std::string>{dir + "/piqa.jsonl", dir + "/own.jsonl"}));
  // No flag, no environment: a clear error naming both ways.
  auto none = ResolveTaskFiles("piqa", "");
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("--data-dir"));
  EXPECT_THAT(none.status().message(), HasSubstr(kTasksDirEnv));
  // A path alone needs no directory.
  EXPECT_TRUE(ResolveTaskFiles(dir + "/own.jsonl", "").ok());
  // The environment variable.
  setenv(kTasksDirEnv, dir.c_str(), 1);
  auto env = ResolveTaskFiles("piqa", "");
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ((*env)[0], dir + "/piqa.jsonl");
  unsetenv(kTasksDirEnv);
  // Missing directory / file are named.
  EXPECT_THAT(ResolveTaskFiles("piqa", dir + "/nope").status().message(), HasSubstr("not a directory"));
  EXPECT_THAT(ResolveTaskFiles("arc_easy", dir).status().message(), HasSubstr(dir + "/arc_easy.jsonl does not exist"));
  EXPECT_FALSE(ResolveTaskFiles(" , ", dir).ok());
}

}  // namespace
}  // namespace squeeze
