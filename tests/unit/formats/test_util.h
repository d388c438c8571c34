// Helpers shared by the formats tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/model_config.h"

namespace squeeze::testing_util {

// Removes the directories FreshTestDir made when the test process exits.
struct TestDirCleaner {
  std::vector<std::string> dirs;
  ~TestDirCleaner() {
    std::error_code ec;
    for (const std::string& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
inline TestDirCleaner test_dir_cleaner;

// A fresh, empty directory unique to the running test and process (tests run
// in parallel, possibly from several build trees), removed at exit.
inline std::string FreshTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = absl::StrCat(::testing::TempDir(), "/formats_", info->test_suite_name(), "_",
                                       info->name(), "_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  test_dir_cleaner.dirs.push_back(dir);
  return dir;
}

// The one-layer untied model the quantized-format export tests
// (quantized_format_bytes_test, quantized_format_roundtrip_test) quantize:
// dim 64, 4 query heads of 16 dims sharing 2 KV heads, hidden 96, vocab 48,
// context 32.
inline ModelConfig QuantExportTinyConfig() {
  ModelConfig c;
  c.dim = 64;
  c.hidden_dim = 96;
  c.n_layers = 1;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 48;
  c.max_seq_len = 32;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = false;
  return c;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A safetensors file from a raw header string and a data buffer.
inline std::string MakeSafetensors(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace squeeze::testing_util
