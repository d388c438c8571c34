// Shared plumbing of the service subcommands (submit, watch, jobs, get,
// cancel, upload, download, report): the --server option, status -> exit code
// mapping, and the JSON shapes printed with --json (numbers stay numbers).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "client/lib/service_client.h"

namespace squeeze::cli {

// Declares --server on a subcommand's parser.
ArgParser& AddServerOption(ArgParser& parser);
// --server, else $SQUEEZE_SERVER, else localhost:50051.
std::string ServerAddress(const ArgParser& parser);
// --retry-seconds (declared by AddServerOption), else $SQUEEZE_RETRY_SECONDS,
// else 30: how long calls safe to repeat keep retrying an unreachable
// coordinator (ServiceClient::set_retry_budget_ms). A malformed value is
// InvalidArgument naming the option.
absl::StatusOr<int64_t> RetryBudgetMs(const ArgParser& parser);
// Applies RetryBudgetMs to `client`; returns the exit code of a malformed
// value (ReportError), or nullopt.
std::optional<int> ApplyRetryOption(const ArgParser& parser, client::ServiceClient& client,
                                    const std::string& command);

// Prints "squeeze <cmd>: <message>" and returns the exit code for `s`:
// unreachable -> 3, the caller's fault (invalid argument, not found, failed
// precondition, out of range, already exists) -> 2, anything else -> 1.
int ReportError(const std::string& command, const std::string& server, const absl::Status& s);

nlohmann::json JobToJson(const v1::Job& job);
// The job's evaluation options ({tasks, task_limit, task_seed|null, latency,
// agreement}); null when the job was submitted without any (worker defaults).
nlohmann::json EvalOptionsToJson(const v1::Job& job);
nlohmann::json EventToJson(const v1::JobEvent& event);
std::string StateName(v1::JobState state);
// "2026-11-22 15:04:05" (UTC) from unix ms; "-" for 0.
std::string FormatTime(int64_t unix_ms);

// Resolves a model/data argument: an existing path is uploaded (a line on
// stderr says so) and its manifest digest returned; a 64-hex digest (optionally
// "sha256:"-prefixed) is returned as is.
absl::StatusOr<std::string> ResolveRef(client::ServiceClient& client, const std::string& arg, const char* what,
                                       bool quiet);

// Streams a job's events to stdout until it ends: a progress bar per stage with
// ETA, or one JSON object per line. Returns the exit code (0 SUCCEEDED, 1
// FAILED or CANCELLED, 3 unreachable).
int WatchJob(client::ServiceClient& client, const std::string& job_id, bool json, const std::string& command);

}  // namespace squeeze::cli
