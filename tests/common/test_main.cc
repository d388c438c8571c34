// main() of every unit-test binary: runs each process in its own fresh
// temporary directory (TEST_TMPDIR, which ::testing::TempDir() returns), so
// test cases that ctest runs in parallel processes never share files, then
// removes it. Keeps any TEST_TMPDIR the caller set as the parent.
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  const char* parent_env = std::getenv("TEST_TMPDIR");
  const char* tmp_env = std::getenv("TMPDIR");
  std::string parent = parent_env && *parent_env ? parent_env : (tmp_env && *tmp_env ? tmp_env : "/tmp");
  std::string pattern = parent + "/squeeze-test.XXXXXX";
  std::string dir;
  if (char* made = ::mkdtemp(pattern.data())) {
    dir = made;
    ::setenv("TEST_TMPDIR", (dir + "/").c_str(), 1);
  }
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (!dir.empty() && std::getenv("SQUEEZE_KEEP_TEST_TMPDIR") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return rc;
}
