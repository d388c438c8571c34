// A real S3-protocol server for tests: tests/integration/s3/s3_server.js (npm
// s3rver behind an aws4 SigV4 check) as a child process on a kernel-picked
// loopback port. Kill() / Restart() keep the port and the data directory, so a
// restarted server sees the objects and multipart uploads of the old one.
#pragma once

#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace squeeze::test_s3 {

inline const std::filesystem::path kNodeModules =
    std::filesystem::path(SQUEEZE_SOURCE_DIR) / "tests" / "node" / "node_modules";
inline const std::filesystem::path kServerScript =
    std::filesystem::path(SQUEEZE_SOURCE_DIR) / "tests" / "integration" / "s3" / "s3_server.js";

// Empty when the server can run here; otherwise why not (for GTEST_SKIP).
inline std::string WhyNoS3Server() {
  if (std::system("node --version >/dev/null 2>&1") != 0) return "node is not installed";
  for (const char* pkg : {"s3rver", "aws4"}) {
    if (!std::filesystem::exists(kNodeModules / pkg / "package.json")) {
      return std::string("npm package ") + pkg + " is missing: run `npm ci` in tests/node (scripts/install-deps.sh does)";
    }
  }
  return "";
}

class S3TestServer {
 public:
  static constexpr const char* kAccessKey = "squeeze-test-key";
  static constexpr const char* kSecret = "squeeze-test-secret";

  // `dir`: data directory (created by the server) and log/port files beside it.
  S3TestServer(std::string dir, std::vector<std::string> buckets) : dir_(std::move(dir)), buckets_(std::move(buckets)) {}
  ~S3TestServer() { Kill(); }

  // Starts on `port_` (0 first time: the kernel picks); false when it did not
  // come up within 20 s (see log()).
  bool Start() {
    const std::string port_file = dir_ + ".port";
    std::filesystem::remove(port_file);
    std::vector<std::string> args = {"node", kServerScript.string(), "--dir", dir_, "--port-file", port_file,
                                     "--port", std::to_string(port_), "--access-key", kAccessKey, "--secret", kSecret};
    for (const std::string& b : buckets_) {
      args.push_back("--bucket");
      args.push_back(b);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = posix_spawnp(&pid_, "node", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    for (int i = 0; i < 400; ++i) {
      std::ifstream in(port_file);
      int p = 0;
      if (in >> p && p > 0) {
        port_ = p;
        return true;
      }
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // SIGKILL (no clean shutdown) and reap.
  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  // Same port and directory. A port taken by someone else meanwhile fails
  // (rare; the caller reports the log).
  bool Restart() {
    Kill();
    return Start();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return dir_ + ".log"; }
  std::string LogText() const {
    std::ifstream in(log());
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::string dir_;
  std::vector<std::string> buckets_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace squeeze::test_s3
