#include "server/objectstore/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/objectstore/s3_xml.h"
#include "server/objectstore/sha256.h"

namespace squeeze::store {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One handle per thread, reset between requests (keeps its connection cache).
struct ThreadHandle {
  CURL* h = nullptr;
  ThreadHandle() { h = curl_easy_init(); }
  ~ThreadHandle() {
    if (h != nullptr) curl_easy_cleanup(h);
  }
};

struct Upload {
  absl::string_view data;
  size_t pos = 0;
};

size_t ReadBody(char* buf, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  const size_t take = std::min(size * n, u->data.size() - u->pos);
  std::memcpy(buf, u->data.data() + u->pos, take);
  u->pos += take;
  return take;
}

// Rewinds the body when curl resends a request (redirect, auth retry).
int SeekBody(void* user, curl_off_t offset, int origin) {
  auto* u = static_cast<Upload*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > u->data.size()) return CURL_SEEKFUNC_FAIL;
  u->pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  absl::string_view line(data, size * n);
  if (line.substr(0, 5) == "HTTP/") {
    headers->clear();  // a new response (after 100 Continue or a redirect)
  } else if (const size_t colon = line.find(':'); colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    (*headers)[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

bool RetryableCurlError(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool RetryableStatus(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace

std::string S3UriEncode(absl::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string S3Query(std::vector<std::pair<std::string, std::string>> params) {
  std::sort(params.begin(), params.end());
  std::vector<std::string> parts;
  for (const auto& [name, value] : params) parts.push_back(absl::StrCat(S3UriEncode(name), "=", S3UriEncode(value)));
  return absl::StrJoin(parts, "&");
}

S3Client::S3Client(S3Options options) : options_(std::move(options)) {
  GlobalInitOnce();
  sigv4_param_ = absl::StrCat("aws:amz:", options_.region, ":s3");
}

std::string S3Client::Describe(const std::string& key) const {
  std::string out = absl::StrCat("s3 ", options_.endpoint, " bucket \"", options_.bucket, "\"");
  if (!key.empty()) absl::StrAppend(&out, " key \"", key, "\"");
  return out;
}

absl::StatusOr<S3Response> S3Client::Send(const S3Request& req) const {
  thread_local ThreadHandle handle;
  CURL* h = handle.h;
  if (h == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string url = absl::StrCat(options_.endpoint, "/", options_.bucket);
  if (!req.key.empty()) absl::StrAppend(&url, "/", req.key);
  if (!req.query.empty()) absl::StrAppend(&url, "?", req.query);
  const std::string payload_sha = Sha256Hex(req.body);

  std::mt19937_64 rng(std::random_device{}());
  std::string last_error;
  S3Response resp;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    resp = S3Response();
    resp.attempts = attempt;
    curl_easy_reset(h);
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, absl::StrCat("x-amz-content-sha256: ", payload_sha).c_str());
    // No "Expect:" line to suppress 100-continue: curl 7.88 would sign the
    // empty header it then does not send, and the signature would not match.
    if (!options_.session_token.empty()) {
      headers = curl_slist_append(headers, absl::StrCat("x-amz-security-token: ", options_.session_token).c_str());
    }
    for (const std::string& line : req.headers) headers = curl_slist_append(headers, line.c_str());
    Upload upload{req.body, 0};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_param_.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, options_.access_key_id.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, options_.secret_access_key.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, WriteHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp.headers);
    if (req.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req.method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadBody);
      curl_easy_setopt(h, CURLOPT_READDATA, &upload);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, SeekBody);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &upload);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    } else if (req.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    } else if (req.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    const CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
      if (!RetryableStatus(resp.status)) return resp;
      last_error = absl::StrCat("HTTP ", resp.status, " ", S3XmlValue(resp.body, "Code"));
    } else {
      last_error = curl_easy_strerror(rc);
      if (!RetryableCurlError(rc)) {
        // Not the caller's fault (TLS, write or callback errors): Unavailable.
        return absl::UnavailableError(
            absl::StrCat(Describe(req.key), ": ", req.method, " ", url, ": ", last_error));
      }
    }
    if (attempt == options_.max_attempts) break;
    retries_.fetch_add(1);
    // Exponential backoff with +-25% jitter.
    const double base = std::min<double>(static_cast<double>(options_.max_backoff_ms),
                                         static_cast<double>(options_.initial_backoff_ms) * (1LL << std::min(attempt - 1, 30)));
    std::uniform_real_distribution<double> jitter(0.75, 1.25);
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(base * jitter(rng) * 1000.0)));
  }
  return absl::UnavailableError(absl::StrCat(Describe(req.key), ": ", req.method, " failed after ",
                                             options_.max_attempts, " attempts: ", last_error));
}

absl::Status S3Client::ErrorFor(const S3Request& req, const S3Response& resp) const {
  const std::string code = S3XmlValue(resp.body, "Code");
  const std::string message = S3XmlValue(resp.body, "Message");
  std::string what = absl::StrCat(Describe(req.key), ": ", req.method, ": HTTP ", resp.status);
  if (!code.empty()) absl::StrAppend(&what, " ", code);
  if (!message.empty()) absl::StrAppend(&what, ": ", message);
  if (resp.status == 401 || resp.status == 403) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, " (authentication or authorization failed: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ",
        "the region \"", options_.region, "\" and the bucket policy)"));
  }
  if (resp.status == 404) {
    if (code == "NoSuchBucket") {
      return absl::NotFoundError(absl::StrCat("s3 bucket \"", options_.bucket, "\" does not exist at ",
                                              options_.endpoint, " (", what, ")"));
    }
    return absl::NotFoundError(what);
  }
  if (resp.status == 409 || resp.status == 412) return absl::FailedPreconditionError(what);
  if (resp.status >= 500) return absl::UnavailableError(what);
  return absl::InvalidArgumentError(what);
}

}  // namespace squeeze::store
