// squeeze submit: upload what is local, submit a job, optionally watch it.
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cli/packed_activations_flag.h"
#include "client/cli/service/common.h"
#include "workers/engine/core/file_util.h"

namespace squeeze::cli {
namespace {

std::string RandomKey() {
  std::random_device rd;
  return absl::StrFormat("cli-%08x%08x%08x", rd(), rd(), rd());
}

int RunSubmit(const std::vector<std::string>& args) {
  ArgParser p("squeeze submit --recipe FILE --model PATH_OR_DIGEST [options]",
              "Submit a compression job. A local model directory (or llama2.c .bin) and local\n"
              "calibration / evaluation text files are uploaded first (deduplicated by sha256).");
  p.Option("recipe", "recipe YAML (llm-compressor dialect)", "", true)
      .Option("model", "model directory/file to upload, or the digest of an uploaded one", "", true)
      .Option("calib", "calibration text file (or digest)")
      .Option("eval-text", "evaluation text file (or digest): perplexity before/after")
      .Option("seed", "seed for every random choice", "0")
      .Option("priority", "higher runs first", "0")
      .Option("labels", "comma-separated key=value pairs")
      .Option("max-attempts", "leases before the job fails (0 = server default)", "0")
      .Option("idempotency-key", "retrying with the same key never makes a second job (default: random)")
      .Option("tasks", "comma-separated zero-shot task names, resolved on the worker (its --tasks-dir)")
      .Option("task-limit", "examples per task (0 = all)", "0")
      .Option("task-seed", "sample --task-limit examples per task with this seed (default: the first ones)")
      .Flag("no-latency", "skip the measured latency in the report")
      .Flag("no-agreement", "skip the KL / top-1 agreement with the dense model")
      .Flag("gpu", "the job needs a GPU worker")
      .Flag("watch", "stream progress until the job ends")
      .Flag("json", "print JSON");
  AddServerOption(p);
  AddPackedActivationsOption(p);
  if (auto code = ParseOrExit(p, args, "submit")) return *code;
  const std::string server = ServerAddress(p);
  const bool json = p.GetFlag("json");

  absl::StatusOr<std::string> recipe = ReadFileToString(p.Get("recipe"));
  if (!recipe.ok()) return ReportError("submit", server, absl::InvalidArgumentError(absl::StrCat("--recipe: ", recipe.status().message())));
  v1::SubmitJobRequest r;
  r.set_recipe_yaml(*recipe);
  for (const char* opt : {"seed", "priority", "max-attempts"}) {
    absl::StatusOr<int64_t> v = p.GetInt(opt);
    if (!v.ok()) return ReportError("submit", server, v.status());
    if (std::string(opt) == "seed") r.set_seed(static_cast<uint64_t>(*v));
    if (std::string(opt) == "priority") r.set_priority(static_cast<int32_t>(*v));
    if (std::string(opt) == "max-attempts") r.set_max_attempts(static_cast<int32_t>(*v));
  }
  if (!p.Get("labels").empty()) {
    for (absl::string_view kv : absl::StrSplit(p.Get("labels"), ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> pair = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      if (pair.first.empty() || kv.find('=') == absl::string_view::npos) {
        return ReportError("submit", server, absl::InvalidArgumentError(absl::StrCat("--labels: \"", kv, "\" is not key=value")));
      }
      (*r.mutable_labels())[pair.first] = pair.second;
    }
  }
  // Evaluation options; the coordinator checks the names ([a-z0-9_]+).
  for (absl::string_view name : absl::StrSplit(p.Get("tasks"), ',', absl::SkipWhitespace())) {
    r.mutable_eval()->add_tasks(std::string(absl::StripAsciiWhitespace(name)));
  }
  {
    absl::StatusOr<int64_t> limit = p.GetInt("task-limit");
    if (!limit.ok()) return ReportError("submit", server, limit.status());
    if (*limit < 0) return ReportError("submit", server, absl::InvalidArgumentError("--task-limit: must be >= 0"));
    if (*limit > 0) r.mutable_eval()->set_task_limit(*limit);
    if (!p.Get("task-seed").empty()) {
      absl::StatusOr<int64_t> ts = p.GetInt("task-seed");
      if (!ts.ok() || *ts < 0) {
        return ReportError("submit", server, absl::InvalidArgumentError("--task-seed: expected an integer >= 0"));
      }
      r.mutable_eval()->set_task_seed(static_cast<uint64_t>(*ts));
    }
  }
  if (p.GetFlag("no-latency")) r.mutable_eval()->set_no_latency(true);
  if (p.GetFlag("no-agreement")) r.mutable_eval()->set_no_agreement(true);
  {
    absl::StatusOr<PackedActivations> a = GetPackedActivations(p);
    if (!a.ok()) return ReportError("submit", server, a.status());
    if (*a != PackedActivations::kFp32) r.mutable_eval()->set_packed_activations(PackedActivationsName(*a));
  }
  r.set_requires_gpu(p.GetFlag("gpu"));
  r.set_idempotency_key(p.Get("idempotency-key").empty() ? RandomKey() : p.Get("idempotency-key"));

  client::ServiceClient client(server);
  if (auto code = ApplyRetryOption(p, client, "submit")) return *code;
  absl::StatusOr<std::string> model = ResolveRef(client, p.Get("model"), "model", json);
  if (!model.ok()) return ReportError("submit", server, model.status());
  r.set_model_digest(*model);
  if (!p.Get("calib").empty()) {
    absl::StatusOr<std::string> d = ResolveRef(client, p.Get("calib"), "calib", json);
    if (!d.ok()) return ReportError("submit", server, d.status());
    r.set_calib_digest(*d);
  }
  if (!p.Get("eval-text").empty()) {
    absl::StatusOr<std::string> d = ResolveRef(client, p.Get("eval-text"), "eval-text", json);
    if (!d.ok()) return ReportError("submit", server, d.status());
    r.set_eval_digest(*d);
  }
  // One retry on a transient failure is safe: the idempotency key dedups it.
  absl::StatusOr<v1::Job> job = client.Submit(r);
  if (!job.ok() && client::IsUnreachable(job.status())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    job = client.Submit(r);
  }
  if (!job.ok()) return ReportError("submit", server, job.status());
  if (json) {
    std::cout << JobToJson(*job).dump() << std::endl;
  } else {
    std::cout << "submitted " << job->job_id() << " (" << StateName(job->state()) << ")\n" << std::flush;
  }
  if (!p.GetFlag("watch")) return kExitOk;
  return WatchJob(client, job->job_id(), json, "submit");
}

}  // namespace
SQUEEZE_COMMAND("submit", "submit a compression job to a coordinator", RunSubmit);
}  // namespace squeeze::cli
