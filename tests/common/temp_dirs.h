// Fresh per-test directories under GoogleTest's TempDir().
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace squeeze::test_inputs {

// `<TempDir>/<prefix><name>`, with it and the stage runner's side directories
// (`.work`, `.partial`) removed, so a test starts from nothing. Not created.
inline std::string FreshTestDir(const std::string& prefix, const std::string& name) {
  const std::string d = ::testing::TempDir() + "/" + prefix + name;
  std::filesystem::remove_all(d);
  std::filesystem::remove_all(d + ".work");
  std::filesystem::remove_all(d + ".partial");
  return d;
}

// `<TempDir>/<prefix><pid>_<current test name>`, emptied and created: unique
// to this process and test, so parallel runs of the binary do not collide.
inline std::filesystem::path EmptyPerTestDir(const std::string& prefix) {
  const std::filesystem::path d =
      std::filesystem::path(::testing::TempDir()) /
      (prefix + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace squeeze::test_inputs
