#include "server/coordinator/coordinator.h"

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/objectstore/manifest.h"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::server {
namespace {

// sha256 hex of the request as deterministic protobuf bytes (map fields sorted),
// with the idempotency key cleared: two submits are "the same request" exactly
// when every other field (recipe, inputs, labels, priority, seed, …) is equal.
std::string RequestFingerprint(const v1::SubmitJobRequest& r) {
  v1::SubmitJobRequest canonical = r;
  canonical.clear_idempotency_key();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    canonical.SerializeToCodedStream(&coded);
  }
  return store::Sha256Hex(bytes);
}

class SystemClock : public Clock {
 public:
  int64_t MonotonicMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t UnixMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Memory a job may need on a worker: the fp32 model, a compressed copy and
// calibration activations; deliberately generous for small models.
constexpr int64_t kMemoryOverheadBytes = 64ll << 20;
constexpr int kMaxEventsPerBatch = 256;

}  // namespace

Clock* RealClock() {
  static SystemClock clock;
  return &clock;
}

bool IsTerminal(v1::JobState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED; }

absl::Status CheckCoordinatorOptions(const CoordinatorOptions& options) {
  if (options.lease_ttl_ms <= 0) return absl::InvalidArgumentError("lease TTL must be positive");
  if (options.default_max_attempts <= 0) return absl::InvalidArgumentError("max attempts must be positive");
  if (options.forget_worker_ms <= 0) return absl::InvalidArgumentError("forget_worker_ms: must be positive");
  if (options.max_lease_wait_ms < 0) return absl::InvalidArgumentError("max_lease_wait_ms: must not be negative");
  // An idle worker is seen again within one long-poll (<= max_lease_wait_ms)
  // plus a round trip bounded by the lease TTL: forgetting it sooner would
  // drop a live worker between its polls.
  // Both terms are >= 0 here; saturate rather than overflow.
  const int64_t floor_ms = options.lease_ttl_ms > std::numeric_limits<int64_t>::max() - options.max_lease_wait_ms
                               ? std::numeric_limits<int64_t>::max()
                               : options.max_lease_wait_ms + options.lease_ttl_ms;
  if (options.forget_worker_ms < floor_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "forget_worker_ms (--forget-worker-ms) ", options.forget_worker_ms, " is below max_lease_wait_ms ",
        options.max_lease_wait_ms, " + lease_ttl_ms (--lease-ttl-ms) ", options.lease_ttl_ms, " = ", floor_ms,
        ": a worker long-polling for a lease would be forgotten between its polls"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Open(CoordinatorOptions options,
                                                               std::unique_ptr<store::ObjectStore> objects) {
  SQ_RETURN_IF_ERROR(CheckCoordinatorOptions(options));
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, JobStore::Open(options.data_dir + "/jobs.db"));
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), std::move(store), std::move(objects)));
  SQ_RETURN_IF_ERROR(c->Recover());
  if (c->options_.metrics != nullptr) {
    SQ_ASSIGN_OR_RETURN(c->metrics_, CoordinatorMetrics::Create(*c->options_.metrics));
    c->options_.metrics->AddCollectHook([p = c.get()] {
      absl::StatusOr<CoordinatorStats> s = p->Stats();
      if (s.ok()) {
        p->metrics_->Update(*s);
      } else {
        std::fprintf(stderr, "squeeze-coordinator: metrics: %s\n", s.status().ToString().c_str());
      }
    });
  }
  if (c->options_.start_reaper) c->reaper_ = std::thread([p = c.get()] { p->ReaperLoop(); });
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, std::unique_ptr<JobStore> store,
                         std::unique_ptr<store::ObjectStore> objects)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : RealClock()),
      store_(std::move(store)),
      objects_(std::move(objects)) {
  std::random_device rd;
  id_state_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(clock_->UnixMs()) ^
              (static_cast<uint64_t>(::getpid()) << 16);
}

Coordinator::~Coordinator() {
  Shutdown();
  stop_reaper_ = true;
  if (reaper_.joinable()) reaper_.join();
}

void Coordinator::Shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    shutdown_ = true;
  }
  queue_cv_.notify_all();
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [id, w] : watchers_) w->cv.notify_all();
}

absl::Status Coordinator::Recover() {
  std::lock_guard<std::mutex> lk(mu_);
  SQ_ASSIGN_OR_RETURN(std::vector<StoredJob> running, store_->InState(v1::RUNNING));
  const int64_t deadline = clock_->MonotonicMs() + options_.lease_ttl_ms;
  for (const StoredJob& j : running) {
    leases_[j.lease_id] = Lease{j.job.job_id(), j.worker_id, deadline};
  }
  return absl::OkStatus();
}

std::string Coordinator::NewId(const char* prefix) {
  // splitmix64 over a random seed: unique enough for ids, cheap, no locking
  // beyond mu_ (callers hold it).
  uint64_t z = (id_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return absl::StrFormat("%s%016x", prefix, z);
}

absl::Status Coordinator::AddEvent(StoredJob& job, v1::JobEvent event) {
  job.job.set_last_seq(job.job.last_seq() + 1);
  event.set_job_id(job.job.job_id());
  event.set_seq(job.job.last_seq());
  event.set_time_ms(clock_->UnixMs());
  // Cached only while someone watches the job (WaitEvents adds the entry, the
  // last watcher leaving drops it): no entry per stored job.
  if (auto it = last_seq_.find(job.job.job_id()); it != last_seq_.end()) it->second = job.job.last_seq();
  dirty_.push_back(job.job.job_id());
  return store_->AppendEvent(event);
}

void Coordinator::NotifyWatchersLocked() {
  for (const std::string& id : dirty_) {
    if (auto it = watchers_.find(id); it != watchers_.end()) it->second->cv.notify_all();
  }
  dirty_.clear();
}

absl::Status Coordinator::SetState(StoredJob& job, v1::JobState state, const std::string& message) {
  job.job.set_state(state);
  if (IsTerminal(state)) {
    job.job.set_end_time_ms(clock_->UnixMs());
    if (metrics_) {
      const int64_t started = job.job.start_time_ms();
      metrics_->Finished(state, started > 0 ? (job.job.end_time_ms() - started) / 1000.0 : 0.0);
    }
    if (!job.lease_id.empty()) leases_.erase(job.lease_id);
    job.lease_id.clear();
    // A finished job needs no checkpoint: drop the reference (blobs are
    // immutable and may be shared, so nothing is deleted here).
    job.checkpoint_digest.clear();
    ForgetJobCaches(job.job.job_id());
  }
  v1::JobEvent e;
  e.set_kind(v1::JobEvent::STATE);
  e.set_state(state);
  e.set_message(message);
  return AddEvent(job, std::move(e));
}

void Coordinator::ForgetJobCaches(const std::string& job_id) {
  for (auto it = stage_start_.begin(); it != stage_start_.end();) {
    if (it->first.compare(0, job_id.size(), job_id) == 0 && it->first.size() > job_id.size() &&
        it->first[job_id.size()] == '\0') {
      it = stage_start_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<StoredJob> Coordinator::MustGet(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is required");
  SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, store_->Get(job_id));
  if (!j) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return *std::move(j);
}

// ---------------------------------------------------------------- submit

absl::StatusOr<v1::Job> Coordinator::Submit(const v1::SubmitJobRequest& r, const std::string& tenant) {
  if (r.recipe_yaml().empty()) return absl::InvalidArgumentError("recipe_yaml: empty recipe");
  if (r.model_digest().empty()) return absl::InvalidArgumentError("model_digest: required (upload the model first)");
  if (r.max_attempts() < 0) return absl::InvalidArgumentError("max_attempts: must be >= 0");
  // Evaluation options: task names are file names on the worker, so only
  // [a-z0-9_]+ (no paths); the worker resolves them against its --tasks-dir.
  for (int i = 0; i < r.eval().tasks_size(); ++i) {
    const std::string& name = r.eval().tasks(i);
    if (name.empty()) return absl::InvalidArgumentError(absl::StrCat("eval.tasks[", i, "]: empty task name"));
    for (char c : name) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
        return absl::InvalidArgumentError(
            absl::StrCat("eval.tasks[", i, "]: \"", name, "\" is not a task name (expected [a-z0-9_]+)"));
      }
    }
  }
  if (r.eval().task_limit() < 0) return absl::InvalidArgumentError("eval.task_limit: must be >= 0");
  if (const std::string& a = r.eval().packed_activations(); !a.empty() && a != "fp32" && a != "int8") {
    return absl::InvalidArgumentError(
        absl::StrCat("eval.packed_activations: \"", absl::CHexEscape(a), "\" is not fp32 or int8"));
  }
  // Inputs must exist and be manifests before anything is queued.
  int64_t model_bytes = 0;
  std::string model_config_sha;  // the model's config.json blob, if any
  const std::pair<const char*, const std::string*> refs[] = {
      {"model_digest", &r.model_digest()}, {"calib_digest", &r.calib_digest()}, {"eval_digest", &r.eval_digest()}};
  for (const auto& [field, digest] : refs) {
    if (digest->empty()) continue;
    if (!store::IsSha256Hex(*digest)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": \"", *digest, "\" is not a sha256 digest"));
    }
    absl::StatusOr<std::string> json = objects_->Get(*digest);
    if (!json.ok()) {
      return absl::NotFoundError(absl::StrCat(field, ": ", *digest, " is not in the object store (upload it first)"));
    }
    absl::StatusOr<store::Manifest> m = store::Manifest::FromJson(*json);
    if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", *digest, " is not a manifest"));
    if (digest == &r.model_digest()) {
      model_bytes = m->TotalBytes();
      for (const store::ManifestEntry& e : m->files) {
        if (e.path == "config.json") model_config_sha = e.sha256;
      }
    }
  }
  if (options_.validate_recipe) {
    absl::Status s = options_.validate_recipe(r.recipe_yaml());
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("recipe: ", s.message()));
  }
  // The recipe against the model's widths (e.g. N:M masks), when it has a config.json.
  if (options_.validate_recipe_for_model && !model_config_sha.empty()) {
    absl::StatusOr<std::string> config = objects_->Get(model_config_sha);
    if (!config.ok()) {
      return absl::NotFoundError(absl::StrCat("model_digest: config.json blob ", model_config_sha, " is missing"));
    }
    absl::Status s = options_.validate_recipe_for_model(r.recipe_yaml(), *config, "model config.json");
    if (!s.ok()) return absl::InvalidArgumentError(std::string(s.message()));
  }

  std::unique_lock<std::mutex> lk(mu_);
  const std::string fingerprint = RequestFingerprint(r);
  // Keys are per tenant: another tenant's key neither returns nor reveals its job.
  const std::string stored_key = tenant.empty() || r.idempotency_key().empty()
                                     ? r.idempotency_key()
                                     : absl::StrCat("\x01", tenant, "\x01", r.idempotency_key());
  if (!r.idempotency_key().empty()) {
    SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> existing, store_->FindByIdempotencyKey(stored_key));
    if (existing) {
      // Rows from before schema v2 carry no fingerprint: keep the old behaviour.
      if (!existing->request_sha256.empty() && existing->request_sha256 != fingerprint) {
        return absl::AlreadyExistsError(absl::StrCat("idempotency_key \"", r.idempotency_key(),
                                                     "\" was already used by job ", existing->job.job_id(),
                                                     " with a different request"));
      }
      return existing->job;
    }
  }
  StoredJob j;
  j.request_sha256 = fingerprint;
  v1::Job& job = j.job;
  job.set_job_id(NewId("job-"));
  job.set_state(v1::QUEUED);
  job.set_recipe_yaml(r.recipe_yaml());
  job.set_model_digest(r.model_digest());
  job.set_calib_digest(r.calib_digest());
  job.set_eval_digest(r.eval_digest());
  *job.mutable_labels() = r.labels();
  job.set_priority(r.priority());
  job.set_seed(r.seed());
  job.set_create_time_ms(clock_->UnixMs());
  job.set_max_attempts(r.max_attempts() > 0 ? r.max_attempts() : options_.default_max_attempts);
  job.set_requires_gpu(r.requires_gpu());
  job.set_memory_estimate_bytes(3 * model_bytes + kMemoryOverheadBytes);
  if (r.has_eval()) *job.mutable_eval() = r.eval();
  job.set_tenant(tenant);
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  SQ_RETURN_IF_ERROR(store_->Insert(j, stored_key));
  v1::JobEvent e;
  e.set_kind(v1::JobEvent::STATE);
  e.set_state(v1::QUEUED);
  e.set_message("submitted");
  SQ_RETURN_IF_ERROR(AddEvent(j, std::move(e)));
  SQ_RETURN_IF_ERROR(CommitJobLocked(j, tx));
  lk.unlock();
  queue_cv_.notify_all();
  return job;
}

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lk(mu_);
  SQ_ASSIGN_OR_RETURN(StoredJob j, MustGet(job_id));
  return j.job;
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobs(const v1::ListJobsRequest& r, const std::string* tenant) {
  int page = r.page_size() <= 0 ? 100 : std::min(r.page_size(), 1000);
  int64_t before = 0;
  if (!r.page_token().empty() && !absl::SimpleAtoi(r.page_token(), &before)) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  std::lock_guard<std::mutex> lk(mu_);
  v1::ListJobsResponse out;
  int64_t last_row = 0;
  while (out.jobs_size() < page) {
    SQ_ASSIGN_OR_RETURN(std::vector<StoredJob> rows, tenant != nullptr
                                                         ? store_->ListOfTenant(*tenant, r.state(), before, 256)
                                                         : store_->List(r.state(), before, 256));
    if (rows.empty()) {
      last_row = 0;
      break;
    }
    for (StoredJob& j : rows) {
      before = j.row;
      bool match = true;
      for (const auto& [k, v] : r.label_selector()) {
        auto it = j.job.labels().find(k);
        if (it == j.job.labels().end() || it->second != v) match = false;
      }
      if (!match) continue;
      *out.add_jobs() = std::move(j.job);
      last_row = j.row;
      if (out.jobs_size() == page) break;
    }
  }
  if (out.jobs_size() == page && last_row > 1) out.set_next_page_token(absl::StrCat(last_row));
  return out;
}

absl::StatusOr<v1::Job> Coordinator::Cancel(const std::string& job_id) {
  std::unique_lock<std::mutex> lk(mu_);
  SQ_ASSIGN_OR_RETURN(StoredJob j, MustGet(job_id));
  if (IsTerminal(j.job.state()) || j.cancel_requested) return j.job;
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  if (j.job.state() == v1::QUEUED) {
    SQ_RETURN_IF_ERROR(SetState(j, v1::CANCELLED, "cancelled while queued"));
  } else {
    j.cancel_requested = true;
    v1::JobEvent e;
    e.set_kind(v1::JobEvent::LOG);
    e.set_state(j.job.state());
    e.set_message("cancel requested; the worker stops at the next layer boundary");
    SQ_RETURN_IF_ERROR(AddEvent(j, std::move(e)));
  }
  SQ_RETURN_IF_ERROR(CommitJobLocked(j, tx));
  lk.unlock();
  return j.job;
}

absl::StatusOr<WatchBatch> Coordinator::WaitEvents(const std::string& job_id, int64_t after_seq, int64_t wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(wait_ms, 0));
  std::unique_lock<std::mutex> lk(mu_);
  std::shared_ptr<Watchers> w = watchers_.try_emplace(job_id, std::make_shared<Watchers>()).first->second;
  ++w->count;
  while (true) {
    auto it = last_seq_.find(job_id);
    if (it == last_seq_.end()) {
      absl::StatusOr<StoredJob> j = MustGet(job_id);
      if (!j.ok()) {
        if (--w->count == 0) {
          watchers_.erase(job_id);
          last_seq_.erase(job_id);
        }
        return j.status();
      }
      it = last_seq_.emplace(job_id, j->job.last_seq()).first;
    }
    if (it->second > after_seq) break;
    if (shutdown_ || std::chrono::steady_clock::now() >= deadline) break;
    w->cv.wait_until(lk, deadline);
  }
  if (--w->count == 0) {
    watchers_.erase(job_id);
    last_seq_.erase(job_id);
  }
  WatchBatch batch;
  SQ_ASSIGN_OR_RETURN(batch.events, store_->EventsAfter(job_id, after_seq, kMaxEventsPerBatch));
  // A rolled-back transaction may have left the cache ahead of the database.
  if (batch.events.empty()) last_seq_.erase(job_id);
  const int64_t last_sent = batch.events.empty() ? after_seq : batch.events.back().seq();
  SQ_ASSIGN_OR_RETURN(StoredJob j, MustGet(job_id));
  batch.done = IsTerminal(j.job.state()) && last_sent >= j.job.last_seq();
  batch.shutting_down = shutdown_;
  return batch;
}

absl::Status Coordinator::GrantBlob(const std::string& tenant, const std::string& digest) {
  std::lock_guard<std::mutex> lk(mu_);
  return store_->GrantBlob(tenant, digest);
}

absl::Status Coordinator::GrantBlobs(const std::string& tenant, const std::vector<std::string>& digests) {
  std::lock_guard<std::mutex> lk(mu_);
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  SQ_RETURN_IF_ERROR(store_->GrantBlobs(tenant, digests));  // tx rolls back on error
  return tx.Commit();
}

absl::StatusOr<bool> Coordinator::TenantHasBlob(const std::string& tenant, const std::string& digest) {
  std::lock_guard<std::mutex> lk(mu_);
  return store_->TenantHasBlob(tenant, digest);
}

absl::StatusOr<v1::GetReportResponse> Coordinator::GetReport(const std::string& job_id) {
  v1::GetReportResponse out;
  v1::Job job;
  {
    std::lock_guard<std::mutex> lk(mu_);
    SQ_ASSIGN_OR_RETURN(StoredJob j, MustGet(job_id));
    if (j.job.state() != v1::SUCCEEDED) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is ", v1::JobState_Name(j.job.state()),
                                                        "; reports exist for SUCCEEDED jobs"));
    }
    out.set_job_id(job_id);
    out.set_report_json(j.report_json);
    out.set_artifact_digest(j.job.artifact_digest());
    job = j.job;
  }
  // The store-wide front (coordinator_pareto.cc), computed outside the lock.
  AddStoreFront(job, out.mutable_report_json());
  return out;
}

// ---------------------------------------------------------------- workers

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(const v1::Capabilities& caps) {
  if (caps.cpu_cores() <= 0) return absl::InvalidArgumentError("capabilities.cpu_cores: must be positive");
  if (caps.ram_bytes() <= 0) return absl::InvalidArgumentError("capabilities.ram_bytes: must be positive");
  std::lock_guard<std::mutex> lk(mu_);
  v1::RegisterWorkerResponse out;
  out.set_worker_id(NewId("worker-"));
  workers_[out.worker_id()] = Worker{caps, clock_->MonotonicMs()};
  out.set_lease_ttl_ms(options_.lease_ttl_ms);
  out.set_heartbeat_interval_ms(std::max<int64_t>(options_.lease_ttl_ms / 4, 50));
  return out;
}

absl::StatusOr<std::optional<v1::Task>> Coordinator::LeaseTask(const std::string& worker_id, int64_t wait_ms,
                                                               const std::function<bool()>& give_up) {
  const int64_t wait = std::clamp<int64_t>(wait_ms, 0, options_.max_lease_wait_ms);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait);
  std::unique_lock<std::mutex> lk(mu_);
  auto w = workers_.find(worker_id);
  if (w == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered (register again)"));
  }
  const v1::Capabilities caps = w->second.caps;
  w->second.last_seen_ms = clock_->MonotonicMs();
  while (true) {
    if (shutdown_) return std::optional<v1::Task>();
    // A long poll whose caller has gone (the worker died or hung up while we
    // waited) must not take a job: it would sit leased to nobody until the
    // lease expires.
    if (give_up && give_up()) return std::optional<v1::Task>();
    SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> next, store_->NextQueued(caps.gpus_size() > 0, caps.ram_bytes()));
    if (next) {
      StoredJob& j = *next;
      j.lease_id = NewId("lease-");
      j.worker_id = worker_id;
      j.job.set_attempts(j.job.attempts() + 1);
      if (j.job.start_time_ms() == 0) {
        j.job.set_start_time_ms(clock_->UnixMs());
        if (metrics_) metrics_->QueueWait((j.job.start_time_ms() - j.job.create_time_ms()) / 1000.0);
      }
      SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
      SQ_RETURN_IF_ERROR(SetState(
          j, v1::RUNNING,
          absl::StrCat("leased to ", worker_id, " (attempt ", j.job.attempts(), " of ", j.job.max_attempts(), ")",
                       j.checkpoint_digest.empty() ? "" : absl::StrCat("; resume from checkpoint ",
                                                                       j.checkpoint_digest))));
      SQ_RETURN_IF_ERROR(store_->Update(j));
      SQ_RETURN_IF_ERROR(tx.Commit());
      leases_[j.lease_id] = Lease{j.job.job_id(), worker_id, clock_->MonotonicMs() + options_.lease_ttl_ms};
      v1::Task t;
      t.set_job_id(j.job.job_id());
      t.set_lease_id(j.lease_id);
      t.set_attempt(j.job.attempts());
      t.set_recipe_yaml(j.job.recipe_yaml());
      t.set_model_digest(j.job.model_digest());
      t.set_calib_digest(j.job.calib_digest());
      t.set_eval_digest(j.job.eval_digest());
      t.set_seed(j.job.seed());
      t.set_lease_ttl_ms(options_.lease_ttl_ms);
      t.set_checkpoint_digest(j.checkpoint_digest);
      if (j.job.has_eval()) *t.mutable_eval() = j.job.eval();
      NotifyWatchersLocked();
      lk.unlock();
      return std::optional<v1::Task>(std::move(t));
    }
    if (std::chrono::steady_clock::now() >= deadline || (give_up && give_up())) return std::optional<v1::Task>();
    // Wake at least every 200 ms to notice a cancelled RPC.
    queue_cv_.wait_until(lk, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)));
  }
}

absl::StatusOr<std::optional<StoredJob>> Coordinator::JobForLease(const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (lease_id.empty() || it == leases_.end()) return std::optional<StoredJob>();
  SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, store_->Get(it->second.job_id));
  if (!j || j->lease_id != lease_id || j->job.state() != v1::RUNNING) {
    leases_.erase(it);
    return std::optional<StoredJob>();
  }
  return j;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& r) {
  std::unique_lock<std::mutex> lk(mu_);
  v1::HeartbeatResponse out;
  SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, JobForLease(r.lease_id()));
  if (!j) {
    out.set_lease_valid(false);
    return out;
  }
  const int64_t now = clock_->MonotonicMs();
  leases_[r.lease_id()].deadline_ms = now + options_.lease_ttl_ms;
  if (auto w = workers_.find(leases_[r.lease_id()].worker_id); w != workers_.end()) w->second.last_seen_ms = now;
  out.set_lease_valid(true);
  out.set_cancel(j->cancel_requested);
  if (r.progress_size() == 0) return out;
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  for (const v1::Progress& p : r.progress()) {
    v1::JobEvent e;
    e.set_kind(v1::JobEvent::PROGRESS);
    e.set_state(v1::RUNNING);
    e.set_stage(p.stage());
    e.set_unit(p.unit());
    e.set_current(p.current());
    e.set_total(p.total());
    e.set_message(p.message());
    *e.mutable_metrics() = p.metrics();
    // ETA: the stage's observed rate since its first report, applied to what is left.
    auto [it, inserted] = stage_start_.try_emplace(absl::StrCat(j->job.job_id(), std::string(1, '\0'), p.stage()),
                                                   std::make_pair(now, p.current()));
    const auto [t0, c0] = it->second;
    double eta = -1;
    if (p.total() > 0 && p.current() >= p.total()) {
      eta = 0;
    } else if (p.current() > c0 && now > t0) {
      eta = (now - t0) / 1000.0 / static_cast<double>(p.current() - c0) * static_cast<double>(p.total() - p.current());
    }
    e.set_eta_seconds(eta);
    SQ_RETURN_IF_ERROR(AddEvent(*j, std::move(e)));
  }
  SQ_RETURN_IF_ERROR(CommitJobLocked(*j, tx));
  lk.unlock();
  return out;
}

absl::StatusOr<v1::TaskAck> Coordinator::CompleteTask(const v1::CompleteTaskRequest& r) {
  // Verify the artifact outside the lock: it reads the object store.
  if (!store::IsSha256Hex(r.artifact_digest())) {
    return absl::InvalidArgumentError("artifact_digest: not a sha256 digest");
  }
  SQ_ASSIGN_OR_RETURN(std::string manifest_json, objects_->Get(r.artifact_digest()));
  SQ_ASSIGN_OR_RETURN(store::Manifest manifest, store::Manifest::FromJson(manifest_json));
  for (const auto& f : manifest.files) {
    if (!objects_->Contains(f.sha256)) {
      return absl::FailedPreconditionError(absl::StrCat("artifact file ", f.path, " was not uploaded"));
    }
  }
  std::unique_lock<std::mutex> lk(mu_);
  v1::TaskAck ack;
  SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, JobForLease(r.lease_id()));
  if (!j) {
    ack.set_accepted(false);
    return ack;
  }
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  j->job.set_artifact_digest(r.artifact_digest());
  j->report_json = r.report_json();
  SQ_RETURN_IF_ERROR(SetState(*j, v1::SUCCEEDED, absl::StrCat("artifact ", r.artifact_digest())));
  // The artifact becomes readable by the job's tenant, in the same transaction.
  if (!j->job.tenant().empty()) {
    std::vector<std::string> digests = {r.artifact_digest()};
    for (const auto& f : manifest.files) digests.push_back(f.sha256);
    SQ_RETURN_IF_ERROR(store_->GrantBlobs(j->job.tenant(), digests));
  }
  SQ_RETURN_IF_ERROR(CommitJobLocked(*j, tx));
  lk.unlock();
  ack.set_accepted(true);
  ack.set_state(v1::SUCCEEDED);
  return ack;
}

absl::Status Coordinator::Requeue(StoredJob& j, const std::string& why, bool charge_attempt) {
  leases_.erase(j.lease_id);
  j.lease_id.clear();
  j.worker_id.clear();
  if (!charge_attempt) j.job.set_attempts(std::max(0, j.job.attempts() - 1));
  if (j.cancel_requested) return SetState(j, v1::CANCELLED, absl::StrCat("cancelled (", why, ")"));
  if (j.job.attempts() >= j.job.max_attempts()) {
    j.job.set_error(absl::StrCat(why, " (after ", j.job.attempts(), " attempts)"));
    return SetState(j, v1::FAILED, j.job.error());
  }
  ForgetJobCaches(j.job.job_id());
  return SetState(j, v1::QUEUED, absl::StrCat(why, "; requeued"));
}

absl::StatusOr<v1::TaskAck> Coordinator::FailTask(const v1::FailTaskRequest& r) {
  std::unique_lock<std::mutex> lk(mu_);
  v1::TaskAck ack;
  SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, JobForLease(r.lease_id()));
  if (!j) return ack;
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  if (r.cancelled() || j->cancel_requested) {
    j->cancel_requested = true;
    SQ_RETURN_IF_ERROR(Requeue(*j, "stopped by the worker", true));
  } else if (r.retryable()) {
    SQ_RETURN_IF_ERROR(Requeue(*j, absl::StrCat("worker error: ", r.error()), true));
  } else {
    j->job.set_error(r.error());
    leases_.erase(j->lease_id);
    SQ_RETURN_IF_ERROR(SetState(*j, v1::FAILED, r.error()));
  }
  SQ_RETURN_IF_ERROR(CommitJobLocked(*j, tx));
  if (metrics_ && j->job.state() == v1::QUEUED) metrics_->Retried("worker_error");
  lk.unlock();
  queue_cv_.notify_all();
  ack.set_accepted(true);
  ack.set_state(j->job.state());
  return ack;
}

absl::Status Coordinator::CheckCheckpoint(const std::string& digest) const {
  if (!store::IsSha256Hex(digest)) return absl::InvalidArgumentError("not a sha256 digest");
  absl::StatusOr<std::string> json = objects_->Get(digest);
  if (!json.ok()) return absl::NotFoundError("not in the object store");
  absl::StatusOr<store::Manifest> m = store::Manifest::FromJson(*json);
  if (!m.ok()) return absl::InvalidArgumentError("not a manifest");
  bool has_json = false;
  for (const auto& f : m->files) {
    if (!objects_->Contains(f.sha256)) {
      return absl::FailedPreconditionError(absl::StrCat("file ", f.path, " was not uploaded"));
    }
    has_json = has_json || f.path == "checkpoint.json";
  }
  if (!has_json) return absl::InvalidArgumentError("no checkpoint.json in it");
  return absl::OkStatus();
}

absl::StatusOr<v1::TaskAck> Coordinator::ReleaseTask(const v1::ReleaseTaskRequest& r) {
  // Verify the checkpoint outside the lock (it reads the object store). A bad
  // one never refuses the release: it is logged and the job keeps the
  // checkpoint it had (an older one of the same run is still valid).
  absl::Status checkpoint_ok = absl::OkStatus();
  if (!r.checkpoint_digest().empty()) checkpoint_ok = CheckCheckpoint(r.checkpoint_digest());
  std::unique_lock<std::mutex> lk(mu_);
  v1::TaskAck ack;
  SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, JobForLease(r.lease_id()));
  if (!j) return ack;
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  std::string why = absl::StrCat("released by the worker: ", r.reason());
  if (!r.checkpoint_digest().empty()) {
    if (checkpoint_ok.ok()) {
      j->checkpoint_digest = r.checkpoint_digest();
      absl::StrAppend(&why, "; checkpoint ", r.checkpoint_digest(), " stored");
    } else {
      std::fprintf(stderr, "squeeze-coordinator: job %s: checkpoint %s ignored: %s\n", j->job.job_id().c_str(),
                   r.checkpoint_digest().c_str(), std::string(checkpoint_ok.message()).c_str());
      absl::StrAppend(&why, "; checkpoint ", r.checkpoint_digest(), " ignored (", checkpoint_ok.message(), ")");
    }
  }
  SQ_RETURN_IF_ERROR(Requeue(*j, why, false));
  SQ_RETURN_IF_ERROR(CommitJobLocked(*j, tx));
  if (metrics_ && j->job.state() == v1::QUEUED) metrics_->Retried("released");
  lk.unlock();
  queue_cv_.notify_all();
  ack.set_accepted(true);
  ack.set_state(j->job.state());
  ack.set_checkpoint_stored(!r.checkpoint_digest().empty() && checkpoint_ok.ok());
  return ack;
}

absl::StatusOr<int> Coordinator::ExpireLeases() {
  std::unique_lock<std::mutex> lk(mu_);
  const int64_t now = clock_->MonotonicMs();
  std::vector<std::string> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline_ms <= now) expired.push_back(id);
  }
  PruneWorkersLocked(now);
  if (expired.empty()) return 0;
  int n = 0, requeued = 0;
  SQ_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(store_->db()));
  for (const std::string& id : expired) {
    const Lease lease = leases_[id];
    SQ_ASSIGN_OR_RETURN(std::optional<StoredJob> j, JobForLease(id));
    if (!j) continue;
    SQ_RETURN_IF_ERROR(Requeue(*j, absl::StrCat("lease expired on ", lease.worker_id), true));
    SQ_RETURN_IF_ERROR(store_->Update(*j));
    ++n;
    if (j->job.state() == v1::QUEUED) ++requeued;
  }
  SQ_RETURN_IF_ERROR(tx.Commit());
  if (metrics_) {
    for (int i = 0; i < n; ++i) metrics_->LeaseExpired();
    for (int i = 0; i < requeued; ++i) metrics_->Retried("lease_expired");
  }
  NotifyWatchersLocked();
  lk.unlock();
  queue_cv_.notify_all();
  return n;
}

void Coordinator::PruneWorkersLocked(int64_t now_ms) {
  std::set<std::string> busy;
  for (const auto& [id, lease] : leases_) busy.insert(lease.worker_id);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (now_ms - it->second.last_seen_ms > options_.forget_worker_ms && busy.count(it->first) == 0) {
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status Coordinator::CommitJobLocked(const StoredJob& job, Transaction& tx) {
  SQ_RETURN_IF_ERROR(store_->Update(job));
  SQ_RETURN_IF_ERROR(tx.Commit());
  NotifyWatchersLocked();
  return absl::OkStatus();
}

void Coordinator::ReaperLoop() {
  const auto period = std::chrono::milliseconds(std::clamp<int64_t>(options_.lease_ttl_ms / 10, 20, 1000));
  auto last_trim = std::chrono::steady_clock::now();
  while (!stop_reaper_) {
    std::this_thread::sleep_for(period);
    absl::StatusOr<int> n = ExpireLeases();
    if (!n.ok()) fprintf(stderr, "squeeze-coordinator: lease expiry failed: %s\n", n.status().ToString().c_str());
#ifdef __GLIBC__
    // glibc keeps freed memory in its per-thread arenas (bursts of hundreds of
    // RPC threads leave megabytes free there: squeeze_coordinator_memory_bytes
    // {kind="heap_free"}); hand it back to the OS every 30 s so the RSS
    // follows what is in use. Measured in tests/integration/reliability/README.md.
    if (std::chrono::steady_clock::now() - last_trim >= std::chrono::seconds(30)) {
      ::malloc_trim(0);
      last_trim = std::chrono::steady_clock::now();
    }
#endif
  }
}

}  // namespace squeeze::server
