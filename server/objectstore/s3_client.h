// S3Client: one signed S3 request over libcurl, with retries.
//
// Signing is libcurl's AWS SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3");
// every request carries x-amz-content-sha256 = the hex sha256 of its body, so
// the server checks the payload against the signature (S3 rejects a body that
// does not match). Addressing is path-style: <endpoint>/<bucket>/<key>.
//
// Thread-safe: each calling thread uses its own curl handle (connections are
// reused per thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/objectstore/s3_options.h"

namespace squeeze::store {

struct S3Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string key;             // object key; empty = the bucket itself
  // Query string exactly as sent and signed: parameters sorted by name, values
  // RFC 3986-encoded, "name=" for a parameter without a value (S3Query builds it).
  std::string query;
  std::vector<std::string> headers;  // extra "Name: value" lines (signed)
  absl::string_view body;            // PUT/POST payload; must outlive Send()
};

struct S3Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lowercased; last value wins
  int attempts = 0;                             // requests sent for this answer
};

// RFC 3986 encoding of a query value (unreserved characters kept).
std::string S3UriEncode(absl::string_view s);
// "a=1&b=&c=x%2Fy" from name/value pairs, sorted by name, values encoded.
std::string S3Query(std::vector<std::pair<std::string, std::string>> params);

class S3Client {
 public:
  explicit S3Client(S3Options options);

  // Sends `request`, retrying transport errors and HTTP 429/5xx as the options
  // say. Returns the response of any other status (the caller maps 4xx with
  // ErrorFor); Unavailable naming the endpoint, bucket and key once the
  // attempts are spent; InvalidArgument for a request curl refuses outright.
  absl::StatusOr<S3Response> Send(const S3Request& request) const;

  // A status for a non-2xx `response`, naming the endpoint, bucket, key and
  // S3's error code and message: PermissionDenied for 401/403 (with a hint at
  // the credential variables), NotFound for 404 (NoSuchBucket says the bucket
  // is missing), FailedPrecondition for 409/412, Unavailable for 5xx,
  // InvalidArgument otherwise.
  absl::Status ErrorFor(const S3Request& request, const S3Response& response) const;

  // "s3 <endpoint> bucket \"B\" key \"K\"" for messages.
  std::string Describe(const std::string& key) const;
  const S3Options& options() const { return options_; }
  // Requests re-sent after a transport error or HTTP 429/5xx, since construction.
  int64_t retries() const { return retries_.load(); }

 private:
  mutable std::atomic<int64_t> retries_{0};
  S3Options options_;
  std::string sigv4_param_;  // "aws:amz:<region>:s3"
};

}  // namespace squeeze::store
