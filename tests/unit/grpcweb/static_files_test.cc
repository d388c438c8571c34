#include "server/grpcweb/static_files.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/common/temp_dirs.h"

namespace squeeze::grpcweb {
namespace {

void Write(const std::filesystem::path& p, const std::string& s) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

std::string HeaderOf(const http::Response& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

http::Response Get(const http::Router& router, const std::string& path) {
  http::Request r;
  r.method = "GET";
  r.path = path;
  return router.Route(r);
}

TEST(StaticFiles, ServesEveryFileAndIndexAtTheRoot) {
  const auto dir = test_inputs::EmptyPerTestDir("grpcweb_static_");
  Write(dir / "index.html", "<!doctype html><p>hi</p>");
  Write(dir / "app.js", "console.log(1)");
  Write(dir / "img/plot.svg", "<svg/>");
  http::Router router;
  ASSERT_TRUE(AddStaticFiles(router, dir.string()).ok());
  http::Response root = Get(router, "/");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(root.body, "<!doctype html><p>hi</p>");
  EXPECT_EQ(HeaderOf(root, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(HeaderOf(root, "X-Content-Type-Options"), "nosniff");
  http::Response js = Get(router, "/app.js");
  EXPECT_EQ(js.body, "console.log(1)");
  EXPECT_EQ(HeaderOf(js, "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(HeaderOf(Get(router, "/img/plot.svg"), "Content-Type"), "image/svg+xml");
  EXPECT_EQ(Get(router, "/missing.js").status, 404);
  EXPECT_EQ(Get(router, "/../index.html").status, 404);
}

TEST(StaticFiles, RejectsAMissingDirectoryOrIndexAndTooMuchData) {
  const auto dir = test_inputs::EmptyPerTestDir("grpcweb_static_");
  http::Router router;
  absl::Status none = AddStaticFiles(router, (dir / "nope").string());
  EXPECT_NE(none.message().find("is not a directory"), std::string::npos) << none;
  Write(dir / "app.js", "x");
  absl::Status no_index = AddStaticFiles(router, dir.string());
  EXPECT_NE(no_index.message().find("has no index.html"), std::string::npos) << no_index;
  Write(dir / "index.html", std::string(100, 'x'));
  absl::Status big = AddStaticFiles(router, dir.string(), 50);
  EXPECT_NE(big.message().find("more than 50 bytes"), std::string::npos) << big;
}

}  // namespace
}  // namespace squeeze::grpcweb
