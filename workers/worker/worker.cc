#include "workers/worker/worker.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/engine/core/allocator_config.h"
#include "workers/engine/eval/task_files.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/runner/checkpoint.h"
#include "workers/worker/checkpoint_choice.h"

namespace squeeze::worker {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void Log(const std::string& msg) { std::fprintf(stderr, "squeeze-worker: %s\n", msg.c_str()); }

bool Retryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kAlreadyExists:
      return false;
    default:
      return true;
  }
}

// Renews the lease every interval and forwards progress as soon as it arrives
// (at most one heartbeat per 100 ms). The reply's cancel or a lost lease
// cancels the run.
class Heartbeat {
 public:
  Heartbeat(client::ServiceClient& client, std::string lease_id, int64_t interval_ms, RunControl& control)
      : client_(client), lease_id_(std::move(lease_id)), interval_ms_(interval_ms), control_(control) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Heartbeat() { Stop(); }

  void Push(v1::Progress p) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      pending_.push_back(std::move(p));
      while (pending_.size() > 4096) pending_.pop_front();  // coordinator down for long: keep the newest
    }
    cv_.notify_one();
  }
  // Sends what is pending once more, then ends the thread.
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  bool cancelled() const { return cancelled_; }
  bool lost() const { return lost_; }

 private:
  void Loop() {
    auto last_sent = Clock::now() - std::chrono::hours(1);
    while (true) {
      std::vector<v1::Progress> batch;
      bool stopping;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait_until(lk, last_sent + std::chrono::milliseconds(interval_ms_),
                       [&] { return stopping_ || !pending_.empty(); });
        stopping = stopping_;
        // Coalesce bursts: no more than one heartbeat per 100 ms unless due.
        const auto earliest = last_sent + std::chrono::milliseconds(100);
        if (!stopping && !pending_.empty() && Clock::now() < earliest) {
          lk.unlock();
          std::this_thread::sleep_until(earliest);
          lk.lock();
        }
        batch.assign(pending_.begin(), pending_.end());
        pending_.clear();
      }
      if (stopping && batch.empty()) return;
      v1::HeartbeatRequest r;
      r.set_lease_id(lease_id_);
      for (auto& p : batch) *r.add_progress() = std::move(p);
      v1::HeartbeatResponse reply;
      auto ctx = client::ServiceClient::UnaryContext();
      const absl::Status s = client::FromGrpc(client_.workers().Heartbeat(ctx.get(), r, &reply));
      last_sent = Clock::now();
      if (s.ok()) {
        if (!reply.lease_valid()) {
          lost_ = true;
          control_.RequestCancel();
        } else if (reply.cancel()) {
          cancelled_ = true;
          control_.RequestCancel();
        }
      } else {
        // Coordinator unreachable (restarting?): keep the progress for later.
        std::lock_guard<std::mutex> lk(mu_);
        for (auto it = r.progress().rbegin(); it != r.progress().rend(); ++it) pending_.push_front(*it);
      }
      if (stopping) return;
    }
  }

  client::ServiceClient& client_;
  const std::string lease_id_;
  const int64_t interval_ms_;
  RunControl& control_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Progress> pending_;
  bool stopping_ = false;
  std::atomic<bool> cancelled_{false}, lost_{false};
  std::thread thread_;
};

class ForwardingSink : public ProgressSink {
 public:
  ForwardingSink(Heartbeat& hb, int64_t pace_ms, WorkerMetrics* metrics = nullptr)
      : hb_(hb), pace_ms_(pace_ms), metrics_(metrics) {}
  void OnProgress(const ProgressEvent& e) override {
    if (metrics_) metrics_->OnProgress(e.stage);
    v1::Progress p;
    p.set_stage(e.stage);
    p.set_unit(e.unit);
    p.set_current(e.i);
    p.set_total(e.n);
    p.set_message(e.message);
    for (const auto& [k, v] : e.metrics) (*p.mutable_metrics())[k] = v;
    hb_.Push(std::move(p));
    if (pace_ms_ > 0 && e.unit == "layer") std::this_thread::sleep_for(std::chrono::milliseconds(pace_ms_));
  }

 private:
  Heartbeat& hb_;
  int64_t pace_ms_;
  WorkerMetrics* metrics_;
};

// "checkpoint at stage S, layer L" from work_dir/checkpoint.json, for logs.
std::string DescribeCheckpoint(const std::string& work_dir) {
  absl::StatusOr<std::string> text = ReadFileToString(work_dir + "/checkpoint.json");
  if (!text.ok()) return "no checkpoint";
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("stage") || !j.contains("next_layer")) return "unreadable checkpoint";
  return absl::StrCat("checkpoint at stage ", j["stage"].dump(), ", layer ", j["next_layer"].dump());
}

// The job's task names as files under the worker's task directory. Names are
// checked again here (the coordinator checks them at submit): [a-z0-9_]+ only,
// so a name can never reach outside tasks_dir.
absl::StatusOr<std::vector<std::string>> JobTaskFiles(const v1::EvalOptions& eval, const std::string& tasks_dir) {
  if (tasks_dir.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the job asks for evaluation tasks (", absl::StrJoin(eval.tasks(), ","),
        ") but this worker has no task directory: start squeeze-worker with --tasks-dir DIR (or set ", kTasksDirEnv,
        ")"));
  }
  for (const std::string& name : eval.tasks()) {
    const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (!ok) return absl::InvalidArgumentError(absl::StrCat("eval.tasks: \"", name, "\" is not a task name"));
  }
  absl::StatusOr<std::vector<std::string>> paths = ResolveTaskFiles(absl::StrJoin(eval.tasks(), ","), tasks_dir);
  if (!paths.ok()) {
    return absl::Status(paths.status().code(), absl::StrCat("--tasks-dir ", tasks_dir, ": ", paths.status().message()));
  }
  return paths;
}

}  // namespace

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)), client_(options_.coordinator), caps_(DetectCapabilities(options_.work_dir)) {}

Worker::~Worker() = default;

void Worker::RequestStop() {
  stop_ = true;
  std::lock_guard<std::mutex> lk(mu_);
  if (control_) control_->RequestStop();
  if (lease_ctx_) lease_ctx_->TryCancel();
}

absl::Status Worker::Register() {
  v1::RegisterWorkerRequest r;
  v1::Capabilities* c = r.mutable_capabilities();
  c->set_cpu_cores(caps_.cpu_cores);
  c->set_avx2(caps_.avx2);
  c->set_avx512f(caps_.avx512f);
  c->set_avx512_vnni(caps_.avx512_vnni);
  c->set_ram_bytes(caps_.ram_bytes);
  c->set_disk_free_bytes(caps_.disk_free_bytes);
  c->set_hostname(caps_.hostname);
  for (const auto& g : caps_.gpus) {
    auto* gpu = c->add_gpus();
    gpu->set_name(g.name);
    gpu->set_memory_bytes(g.memory_bytes);
  }
  v1::RegisterWorkerResponse reply;
  auto ctx = client::ServiceClient::UnaryContext();
  SQ_RETURN_IF_ERROR(client::FromGrpc(client_.workers().RegisterWorker(ctx.get(), r, &reply)));
  worker_id_ = reply.worker_id();
  heartbeat_interval_ms_ = std::max<int64_t>(reply.heartbeat_interval_ms(), 50);
  Log(absl::StrCat("registered as ", worker_id_, " with ", options_.coordinator, " (", Describe(caps_),
                   "; lease TTL ", reply.lease_ttl_ms(), " ms)"));
  return absl::OkStatus();
}

absl::Status Worker::RetryUnreachable(const std::function<absl::Status()>& call) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.result_retry_ms);
  while (true) {
    absl::Status s = call();
    if (!client::IsUnreachable(s) || Clock::now() > deadline) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

absl::StatusOr<Worker::Exit> Worker::Run() {
  SQ_RETURN_IF_ERROR(MakeDirs(options_.work_dir));
  caps_ = DetectCapabilities(options_.work_dir);  // free disk needs the directory
  {
    // GPUs are advertised only when this worker's stages would use them.
    absl::StatusOr<Device> run_device = SelectDevice(options_.device, "--device");
    const std::string dropped = KeepGpusOnlyForCuda(
        run_device.ok() ? *run_device : CpuDevice(std::string(run_device.status().message())), &caps_);
    if (!dropped.empty()) Log(dropped);
  }
  bool registered = false;
  while (!stop_) {
    if (!registered) {
      absl::Status s = Register();
      if (client::IsUnreachable(s)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        continue;
      }
      SQ_RETURN_IF_ERROR(s);
      registered = true;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.lease_wait_ms + 5000));
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) break;
      lease_ctx_ = &ctx;
    }
    v1::LeaseTaskRequest r;
    r.set_worker_id(worker_id_);
    r.set_wait_ms(options_.lease_wait_ms);
    v1::LeaseTaskResponse reply;
    const absl::Status s = client::FromGrpc(client_.workers().LeaseTask(&ctx, r, &reply));
    {
      std::lock_guard<std::mutex> lk(mu_);
      lease_ctx_ = nullptr;
    }
    if (stop_) {
      // A task leased in the same instant goes back at once.
      if (s.ok() && reply.found()) {
        v1::ReleaseTaskRequest rel;
        rel.set_lease_id(reply.task().lease_id());
        rel.set_reason("worker stopping");
        v1::TaskAck ack;
        auto rctx = client::ServiceClient::UnaryContext();
        client_.workers().ReleaseTask(rctx.get(), rel, &ack);
      }
      break;
    }
    if (s.code() == absl::StatusCode::kNotFound) {  // coordinator restarted and forgot us
      registered = false;
      continue;
    }
    if (client::IsUnreachable(s) || s.code() == absl::StatusCode::kCancelled) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      continue;
    }
    SQ_RETURN_IF_ERROR(s);
    if (!reply.found()) continue;
    SQ_ASSIGN_OR_RETURN(Exit e, RunTask(reply.task()));
    if (e == Exit::kStopped) return e;
    if (options_.once) return Exit::kDone;
  }
  return Exit::kStopped;
}

absl::StatusOr<std::string> Worker::EnsureTree(const std::string& digest) {
  const std::string final_dir = absl::StrCat(options_.work_dir, "/models/", digest);
  std::error_code ec;
  if (fs::is_directory(final_dir, ec)) return final_dir;  // complete copies only ever appear by rename
  const std::string tmp = final_dir + ".partial";
  SQ_RETURN_IF_ERROR(RetryUnreachable([&] { return client_.DownloadTree(digest, tmp); }));
  fs::rename(tmp, final_dir, ec);
  if (ec && !fs::is_directory(final_dir)) return absl::InternalError(absl::StrCat(final_dir, ": ", ec.message()));
  return final_dir;
}

absl::StatusOr<std::string> Worker::ModelPath(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "config.json")) return dir;
  std::string found;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".bin" && e.path().filename().string().rfind("tok", 0) != 0) {
      if (!found.empty()) return absl::InvalidArgumentError("model: several .bin files and no config.json");
      found = e.path().string();
    }
  }
  if (found.empty()) return absl::InvalidArgumentError("model: neither config.json nor a llama2.c .bin file");
  return found;
}

absl::StatusOr<std::string> Worker::SingleFile(const std::string& dir, const char* what) {
  std::string found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (!found.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": expected one file, got several"));
    found = e.path().string();
  }
  if (found.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no file"));
  return found;
}

std::string Worker::FetchCheckpoint(const v1::Task& task, const std::string& job_dir,
                                    const std::string& work_dir) {
  const std::string& digest = task.checkpoint_digest();
  const std::string tmp = job_dir + "/checkpoint.partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  absl::Status s = RetryUnreachable([&] { return client_.DownloadTree(digest, tmp); });
  if (s.ok() && !fs::exists(tmp + "/checkpoint.json", ec)) {
    s = absl::InvalidArgumentError("no checkpoint.json in it");
  }
  std::string message;
  if (s.ok() && ChooseCheckpoint(work_dir, tmp) == CheckpointChoice::kLocal) {
    // A stop whose upload failed left a further checkpoint of this run here
    // than the one the coordinator holds: keep ours.
    fs::remove_all(tmp, ec);
    message = absl::StrCat("kept this worker's local ", DescribeCheckpoint(work_dir), ", further than checkpoint ",
                           digest);
    Log(absl::StrCat(task.job_id(), ": ", message));
    return message;
  }
  if (s.ok()) {
    // Replace whatever this worker had locally: the coordinator's is newer
    // (or the local one belongs to another run).
    fs::remove_all(work_dir, ec);
    fs::rename(tmp, work_dir, ec);
    if (ec) s = absl::InternalError(absl::StrCat("cannot move it into ", work_dir, ": ", ec.message()));
  }
  if (s.ok()) {
    message = absl::StrCat("fetched checkpoint ", digest, " (", DescribeCheckpoint(work_dir), ")");
  } else {
    fs::remove_all(tmp, ec);
    message = absl::StrCat("checkpoint ", digest, " unavailable (", s.message(), "); starting from ",
                           HasRunCheckpoint(work_dir) ? "this worker's local checkpoint" : "zero");
  }
  Log(absl::StrCat(task.job_id(), ": ", message));
  return message;
}

absl::StatusOr<Worker::Exit> Worker::RunTask(const v1::Task& task) {
  Log(absl::StrCat("leased ", task.job_id(), " (attempt ", task.attempt(), ")"));
  // Metrics: each way out sets the outcome; an error return counts as failed.
  struct CountOutcome {
    WorkerMetrics* m;
    const char* outcome = "failed";
    ~CountOutcome() {
      if (m) m->TaskEnded(outcome);
    }
  } outcome{options_.metrics};
  if (options_.metrics) {
    options_.metrics->TaskStarted();
    options_.metrics->EnterStage("fetch");
  }
  RunControl control;
  Heartbeat hb(client_, task.lease_id(), heartbeat_interval_ms_, control);
  ForwardingSink sink(hb, options_.pace_ms, options_.metrics);
  {
    std::lock_guard<std::mutex> lk(mu_);
    control_ = &control;
    if (stop_) control.RequestStop();
  }
  struct ClearControl {
    Worker* w;
    ~ClearControl() {
      std::lock_guard<std::mutex> lk(w->mu_);
      w->control_ = nullptr;
    }
  } clear_control{this};

  const std::string job_dir = absl::StrCat(options_.work_dir, "/jobs/", task.job_id());
  RunOptions run;
  run.seed = task.seed();
  run.threads = options_.threads;
  run.device = options_.device;
  run.work_dir = job_dir + "/work";
  run.output_dir = job_dir + "/out";
  // The checkpoint fingerprint names inputs by digest, not by this worker's
  // paths, so a checkpoint from another worker is accepted; one that cannot be
  // used is reported and dropped rather than failing the job.
  run.model_digest = task.model_digest();
  run.calib_digest = task.calib_digest();
  run.eval_digest = task.eval_digest();
  run.discard_unusable_checkpoint = true;
  // The job's evaluation options (absent: the defaults, no tasks).
  run.report.task_limit = task.eval().task_limit();
  if (task.eval().has_task_seed()) run.report.task_seed = task.eval().task_seed();
  run.report.latency = !task.eval().no_latency();
  run.report.agreement = !task.eval().no_agreement();
  absl::StatusOr<PackedActivations> packed_activations =
      ParsePackedActivations(task.eval().packed_activations().empty() ? "fp32" : task.eval().packed_activations());
  absl::StatusOr<RunResult> result = [&]() -> absl::StatusOr<RunResult> {
    if (task.eval().tasks_size() > 0) {
      SQ_ASSIGN_OR_RETURN(run.report.task_paths, JobTaskFiles(task.eval(), options_.tasks_dir));
    }
    if (!packed_activations.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("eval.packed_activations: ", packed_activations.status().message()));
    }
    run.report.packed_activations = *packed_activations;
    SQ_ASSIGN_OR_RETURN(Recipe recipe, ParseRecipe(task.recipe_yaml()));
    SQ_ASSIGN_OR_RETURN(std::string model_dir, EnsureTree(task.model_digest()));
    SQ_ASSIGN_OR_RETURN(run.model_path, ModelPath(model_dir));
    if (!task.calib_digest().empty()) {
      SQ_ASSIGN_OR_RETURN(std::string d, EnsureTree(task.calib_digest()));
      SQ_ASSIGN_OR_RETURN(run.calib_text_path, SingleFile(d, "calibration data"));
    }
    if (!task.eval_digest().empty()) {
      SQ_ASSIGN_OR_RETURN(std::string d, EnsureTree(task.eval_digest()));
      SQ_ASSIGN_OR_RETURN(run.eval_text_path, SingleFile(d, "evaluation text"));
    }
    SQ_RETURN_IF_ERROR(MakeDirs(run.work_dir));
    if (!task.checkpoint_digest().empty()) {
      v1::Progress p;  // into the job's events: where this lease starts from
      p.set_stage("resume");
      p.set_unit("model");
      p.set_total(1);
      p.set_message(FetchCheckpoint(task, job_dir, run.work_dir));
      hb.Push(std::move(p));
    }
    std::error_code ec;
    fs::remove_all(run.output_dir, ec);  // a previous attempt's partial output
    return RunRecipe(recipe, run, sink, control);
  }();
  // The job's model and buffers are freed: give their pages back so an idle
  // worker does not keep them (ConfigureAllocatorForInference keeps freed
  // memory in the heap for the speed of repeated forward passes).
  ReleaseFreedMemory();
  // A graceful stop uploads its checkpoint before releasing the lease: the
  // heartbeats go on meanwhile, so a slow upload does not let the lease
  // expire (which would requeue the job, charge an attempt and drop the
  // checkpoint).
  const bool stopped_with_checkpoint = !result.ok() && IsStoppedWithCheckpoint(result.status());
  if (!stopped_with_checkpoint) hb.Stop();
  if (options_.metrics) options_.metrics->EndStage();

  bool ack_accepted = false;           // the last ack's `accepted`
  bool ack_checkpoint_stored = false;  // the last ack's `checkpoint_stored` (ReleaseTask)
  auto send_ack = [&](auto rpc, const auto& request) -> absl::Status {
    return RetryUnreachable([&] {
      v1::TaskAck ack;
      auto ctx = client::ServiceClient::UnaryContext();
      absl::Status s = client::FromGrpc((client_.workers().*rpc)(ctx.get(), request, &ack));
      ack_accepted = s.ok() && ack.accepted();
      ack_checkpoint_stored = s.ok() && ack.checkpoint_stored();
      if (s.ok() && !ack.accepted()) Log(absl::StrCat(task.job_id(), ": the coordinator no longer holds this lease"));
      return s;
    });
  };
  std::error_code ec;
  if (hb.lost()) {
    Log(absl::StrCat(task.job_id(), ": lease lost; abandoning the run"));
    outcome.outcome = "lost";
    return stop_ ? Exit::kStopped : Exit::kDone;
  }
  if (stopped_with_checkpoint) {
    Log(absl::StrCat(task.job_id(), ": ", result.status().message()));
    // Hand the checkpoint to the coordinator so that any worker's next lease
    // resumes from it. Without it (store unreachable) the job still goes back
    // to the queue; this worker's local copy stays for a lease it gets itself.
    absl::StatusOr<v1::UploadModelResponse> uploaded = absl::UnavailableError("not attempted");
    absl::Status up = RetryUnreachable([&] {
      uploaded = client_.UploadPath(run.work_dir);
      return uploaded.status();
    });
    v1::ReleaseTaskRequest r;
    r.set_lease_id(task.lease_id());
    if (up.ok()) {
      r.set_checkpoint_digest(uploaded->digest());
      r.set_reason(absl::StrCat("worker stopping (SIGTERM); ", DescribeCheckpoint(run.work_dir)));
      Log(absl::StrCat(task.job_id(), ": checkpoint uploaded as ", uploaded->digest()));
    } else {
      r.set_reason("worker stopping (SIGTERM); checkpoint kept on the worker only");
      Log(absl::StrCat(task.job_id(), ": checkpoint upload failed (", up.ToString(), "); kept in ", run.work_dir));
    }
    hb.Stop();
    if (hb.lost()) {
      Log(absl::StrCat(task.job_id(), ": lease lost during the checkpoint upload; checkpoint kept in ", run.work_dir));
      outcome.outcome = "lost";
      return Exit::kStopped;
    }
    SQ_RETURN_IF_ERROR(send_ack(&v1::WorkerService::Stub::ReleaseTask, r));
    // Drop the local copy only when the object store holds it and the
    // coordinator verified and stored its digest; a checkpoint it ignored
    // (e.g. a blob missing) stays here for a lease this worker gets itself.
    if (up.ok() && ack_accepted && ack_checkpoint_stored) {
      fs::remove_all(job_dir, ec);
    } else if (up.ok() && ack_accepted) {
      Log(absl::StrCat(task.job_id(), ": the coordinator did not store checkpoint ", uploaded->digest(),
                       "; kept in ", run.work_dir));
    }
    outcome.outcome = "released";
    return Exit::kStopped;
  }
  if (!result.ok()) {
    const bool cancelled = hb.cancelled() || result.status().code() == absl::StatusCode::kCancelled;
    Log(absl::StrCat(task.job_id(), cancelled ? ": cancelled" : ": failed: ", cancelled ? "" : result.status().ToString()));
    v1::FailTaskRequest r;
    r.set_lease_id(task.lease_id());
    r.set_error(std::string(result.status().message()));
    r.set_retryable(Retryable(result.status()));
    r.set_cancelled(cancelled);
    SQ_RETURN_IF_ERROR(send_ack(&v1::WorkerService::Stub::FailTask, r));
    if (cancelled || !r.retryable()) fs::remove_all(job_dir, ec);
    outcome.outcome = cancelled ? "cancelled" : "failed";
    return stop_ ? Exit::kStopped : Exit::kDone;
  }

  absl::StatusOr<v1::UploadModelResponse> uploaded =
      absl::UnavailableError("not attempted");
  if (options_.metrics) options_.metrics->EnterStage("upload");
  absl::Status up = RetryUnreachable([&] {
    uploaded = client_.UploadPath(run.output_dir);
    return uploaded.status();
  });
  if (!up.ok() && !client::IsUnreachable(up)) {
    // The store refused the artifact (e.g. RESOURCE_EXHAUSTED: --store-max-bytes;
    // nothing of it is visible there). Fail the task with that error rather
    // than leave it to expire; a full store is not retried (the job FAILS at
    // once, naming the limit), other errors follow the usual retry rule.
    Log(absl::StrCat(task.job_id(), ": artifact upload failed: ", up.ToString()));
    v1::FailTaskRequest f;
    f.set_lease_id(task.lease_id());
    f.set_error(absl::StrCat("cannot store the artifact: ", up.message()));
    f.set_retryable(up.code() != absl::StatusCode::kResourceExhausted && Retryable(up));
    SQ_RETURN_IF_ERROR(send_ack(&v1::WorkerService::Stub::FailTask, f));
    fs::remove_all(job_dir, ec);
    return stop_ ? Exit::kStopped : Exit::kDone;
  }
  SQ_RETURN_IF_ERROR(up);
  v1::CompleteTaskRequest r;
  r.set_lease_id(task.lease_id());
  r.set_artifact_digest(uploaded->digest());
  r.set_report_json(result->report.dump());
  SQ_RETURN_IF_ERROR(send_ack(&v1::WorkerService::Stub::CompleteTask, r));
  Log(absl::StrCat(task.job_id(), ": done, artifact ", uploaded->digest()));
  fs::remove_all(job_dir, ec);
  outcome.outcome = "succeeded";
  return stop_ ? Exit::kStopped : Exit::kDone;
}

}  // namespace squeeze::worker
