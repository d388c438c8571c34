#include "client/cli/service/common.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/objectstore/sha256.h"

namespace squeeze::cli {

ArgParser& AddServerOption(ArgParser& parser) {
  return parser.Option("server", "coordinator address (default $SQUEEZE_SERVER or localhost:50051)")
      .Option("tls-ca", "PEM CA to verify the coordinator's TLS certificate (default $SQUEEZE_TLS_CA; unset = plaintext)")
      .Option("token",
              "bearer token for a coordinator with --auth-config (default $SQUEEZE_TOKEN); sent only over TLS "
              "(--tls-ca)")
      .Flag("insecure-send-token",
            "send --token over a plaintext connection too (default: refused without --tls-ca; "
            "$SQUEEZE_INSECURE_SEND_TOKEN=1)")
      .Option("retry-seconds",
              "keep retrying an unreachable coordinator this long, for calls safe to repeat (default "
              "$SQUEEZE_RETRY_SECONDS or 30; 0 = fail at once)");
}

absl::StatusOr<int64_t> RetryBudgetMs(const ArgParser& parser) {
  std::string text = parser.Get("retry-seconds");
  const char* what = "--retry-seconds";
  if (text.empty()) {
    const char* env = std::getenv("SQUEEZE_RETRY_SECONDS");
    if (env == nullptr || *env == '\0') return int64_t{30'000};
    text = env;
    what = "$SQUEEZE_RETRY_SECONDS";
  }
  double seconds = 0;
  if (!absl::SimpleAtod(text, &seconds) || !(seconds >= 0) || seconds > 86'400) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", text, "\" is not a number of seconds in [0, 86400]"));
  }
  return static_cast<int64_t>(seconds * 1000);
}

std::optional<int> ApplyRetryOption(const ArgParser& parser, client::ServiceClient& client,
                                    const std::string& command) {
  absl::StatusOr<int64_t> ms = RetryBudgetMs(parser);
  if (!ms.ok()) return ReportError(command, client.address(), ms.status());
  client.set_retry_budget_ms(*ms, /*announce=*/true);
  return std::nullopt;
}

std::string ServerAddress(const ArgParser& parser) {
  // --tls-ca / --token reach the client through the environment, as the
  // global flags do (ServiceClient reads ChannelSecurity::FromEnv()).
  if (const std::string ca = parser.Get("tls-ca"); !ca.empty()) setenv("SQUEEZE_TLS_CA", ca.c_str(), 1);
  if (const std::string token = parser.Get("token"); !token.empty()) setenv("SQUEEZE_TOKEN", token.c_str(), 1);
  if (parser.GetFlag("insecure-send-token")) setenv(client::kInsecureSendTokenEnv, "1", 1);
  if (absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
          client::ChannelSecurity::FromEnv().Credentials();
      !creds.ok()) {
    std::cerr << "squeeze: " << creds.status().message() << "\n";
    std::exit(kExitUsage);  // bad usage: the TLS files cannot be used, or a token without TLS
  }
  const std::string s = parser.Get("server");
  return s.empty() ? client::DefaultServerAddress() : s;
}

int ReportError(const std::string& command, const std::string& server, const absl::Status& s) {
  if (client::IsUnreachable(s)) {
    std::cerr << "squeeze " << command << ": cannot reach the coordinator at " << server << ": " << s.message()
              << "\n";
    return kExitUnreachable;
  }
  std::cerr << "squeeze " << command << ": " << s.message() << "\n";
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnauthenticated:   // no / wrong token: the caller's input
    case absl::StatusCode::kPermissionDenied:
      return kExitUsage;
    default:
      return kExitJobFailed;
  }
}

std::string StateName(v1::JobState state) { return v1::JobState_Name(state); }

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

nlohmann::json EvalOptionsToJson(const v1::Job& j) {
  if (!j.has_eval()) return nullptr;  // the worker's defaults
  const v1::EvalOptions& e = j.eval();
  return {{"tasks", std::vector<std::string>(e.tasks().begin(), e.tasks().end())},
          {"task_limit", e.task_limit()},
          {"task_seed", e.has_task_seed() ? nlohmann::json(e.task_seed()) : nlohmann::json(nullptr)},
          {"latency", !e.no_latency()},
          {"agreement", !e.no_agreement()},
          {"packed_activations", e.packed_activations().empty() ? "fp32" : e.packed_activations()}};
}

nlohmann::json JobToJson(const v1::Job& j) {
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [k, v] : j.labels()) labels[k] = v;
  return {{"job_id", j.job_id()},
          {"state", StateName(j.state())},
          {"model_digest", j.model_digest()},
          {"calib_digest", j.calib_digest()},
          {"eval_digest", j.eval_digest()},
          {"labels", labels},
          {"priority", j.priority()},
          {"seed", j.seed()},
          {"error", j.error()},
          {"artifact_digest", j.artifact_digest()},
          {"create_time_ms", j.create_time_ms()},
          {"start_time_ms", j.start_time_ms()},
          {"end_time_ms", j.end_time_ms()},
          {"attempts", j.attempts()},
          {"max_attempts", j.max_attempts()},
          {"last_seq", j.last_seq()},
          {"eval", EvalOptionsToJson(j)}};
}

nlohmann::json EventToJson(const v1::JobEvent& e) {
  nlohmann::json out = {{"job_id", e.job_id()},
                        {"seq", e.seq()},
                        {"time_ms", e.time_ms()},
                        {"kind", v1::JobEvent::Kind_Name(e.kind())},
                        {"state", StateName(e.state())}};
  if (!e.message().empty()) out["message"] = e.message();
  if (e.kind() == v1::JobEvent::PROGRESS) {
    out["stage"] = e.stage();
    out["unit"] = e.unit();
    out["current"] = e.current();
    out["total"] = e.total();
    out["eta_seconds"] = e.eta_seconds();
    nlohmann::json m = nlohmann::json::object();
    for (const auto& [k, v] : e.metrics()) m[k] = v;
    out["metrics"] = m;
  }
  return out;
}

absl::StatusOr<std::string> ResolveRef(client::ServiceClient& client, const std::string& arg, const char* what,
                                       bool quiet) {
  std::error_code ec;
  if (std::filesystem::exists(arg, ec)) {
    absl::StatusOr<v1::UploadModelResponse> up = client.UploadPath(arg);
    if (!up.ok()) return up.status();
    if (!quiet) {
      std::cerr << absl::StrFormat("uploaded %s %s: %d files, %d bytes -> %s%s\n", what, arg, up->file_count(),
                                   up->total_bytes(), up->digest(), up->deduplicated() ? " (already stored)" : "");
    }
    return up->digest();
  }
  std::string digest = arg;
  if (absl::StartsWith(digest, "sha256:")) digest = digest.substr(7);
  if (store::IsSha256Hex(digest)) return digest;
  return absl::InvalidArgumentError(
      absl::StrCat("--", what, ": \"", arg, "\" is neither an existing path nor a sha256 digest"));
}

namespace {

std::string Bar(double frac, int width) {
  frac = std::clamp(frac, 0.0, 1.0);
  const int full = static_cast<int>(frac * width + 0.5);
  return absl::StrCat(std::string(full, '#'), std::string(width - full, '-'));
}

std::string Eta(double s) {
  if (s < 0) return "ETA --";
  if (s < 60) return absl::StrFormat("ETA %.0fs", s);
  return absl::StrFormat("ETA %dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

}  // namespace

int WatchJob(client::ServiceClient& client, const std::string& job_id, bool json, const std::string& command) {
  const bool tty = ::isatty(STDOUT_FILENO);
  std::string bar_stage;  // stage whose bar is on the current line (tty only)
  v1::JobState final_state = v1::JOB_STATE_UNSPECIFIED;
  std::string final_message;
  auto end_bar = [&] {
    if (!bar_stage.empty()) std::cout << "\n";
    bar_stage.clear();
  };
  absl::Status s = client.Watch(job_id, 0, [&](const v1::JobEvent& e) {
    if (e.kind() == v1::JobEvent::STATE) {
      final_state = e.state();
      final_message = e.message();
    }
    if (json) {
      std::cout << EventToJson(e).dump() << std::endl;
      return true;
    }
    if (e.kind() == v1::JobEvent::PROGRESS) {
      const double frac = e.total() > 0 ? static_cast<double>(e.current()) / e.total() : 0;
      std::string metrics;
      for (const auto& [k, v] : e.metrics()) absl::StrAppendFormat(&metrics, " %s=%.4g", k, v);
      const std::string line =
          absl::StrFormat("  %-16s %-6s %3d/%-3d [%s] %3.0f%% %s%s", e.stage(), e.unit(), e.current(), e.total(),
                          Bar(frac, 24), 100 * frac, Eta(e.eta_seconds()), metrics);
      if (tty) {
        if (!bar_stage.empty() && bar_stage != e.stage() + "/" + e.unit()) std::cout << "\n";
        bar_stage = e.stage() + "/" + e.unit();
        std::cout << "\r\033[K" << line << std::flush;
      } else {
        std::cout << line << "\n" << std::flush;
      }
      return true;
    }
    end_bar();
    std::cout << absl::StrFormat("[%s] %s: %s\n", FormatTime(e.time_ms()), StateName(e.state()), e.message())
              << std::flush;
    return true;
  });
  end_bar();
  if (!s.ok()) return ReportError(command, client.address(), s);
  if (final_state == v1::SUCCEEDED) return kExitOk;
  if (!json) std::cerr << "squeeze " << command << ": job " << job_id << " " << StateName(final_state) << "\n";
  return kExitJobFailed;
}

}  // namespace squeeze::cli
