#include "server/grpcweb/static_files.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace squeeze::grpcweb {

namespace fs = std::filesystem;

std::string ContentTypeForPath(const std::string& path) {
  const std::string ext = absl::AsciiStrToLower(fs::path(path).extension().string());
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

absl::Status AddStaticFiles(http::Router& router, const std::string& dir, int64_t max_total_bytes) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--dashboard-dir: ", dir, " is not a directory"));
  }
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dashboard-dir: ", dir, " has no index.html (build it: npm run build in client/web)"));
  }
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::InvalidArgumentError(absl::StrCat("--dashboard-dir: cannot read ", it->path().string()));
    }
    auto body = std::make_shared<const std::string>(bytes.str());
    total += static_cast<int64_t>(body->size());
    if (total > max_total_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dashboard-dir: ", dir, " holds more than ", max_total_bytes, " bytes"));
    }
    const std::string rel = fs::relative(it->path(), dir).generic_string();
    const std::string type = ContentTypeForPath(rel);
    auto handler = [body, type](const http::Request&) {
      http::Response r;
      r.headers.emplace_back("Content-Type", type);
      r.headers.emplace_back("Cache-Control", "no-cache");
      r.headers.emplace_back("X-Content-Type-Options", "nosniff");
      r.body = *body;
      return r;
    };
    router.Handle("GET", "/" + rel, handler);
    if (rel == "index.html") router.Handle("GET", "/", handler);
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--dashboard-dir: ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace squeeze::grpcweb
