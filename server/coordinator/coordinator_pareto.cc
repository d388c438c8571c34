// Coordinator::GetPareto and the store-wide front GetReport adds: the jobs
// are read on a read-only connection of their own (index jobs_model; mu_ is
// not taken), then the reports parsed and the front computed
// (workers/runner/report_front.h, pure).
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/coordinator/coordinator.h"
#include "workers/engine/core/status_macros.h"
#ifdef SQUEEZE_HAVE_RUNNER
#include "workers/runner/report_front.h"
#endif

namespace squeeze::server {
namespace {

bool IsHexDigest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

#ifdef SQUEEZE_HAVE_RUNNER
// Parsed reports of `jobs` (unparsable ones become an empty object, which
// StoreParetoJson lists as excluded); the index of `anchor_job` or 0.
std::vector<StoredJobReport> ParseReports(const std::vector<StoredJob>& jobs, const std::string& anchor_job,
                                          size_t* anchor) {
  std::vector<StoredJobReport> out;
  *anchor = 0;
  for (const StoredJob& j : jobs) {
    StoredJobReport r;
    r.job_id = j.job.job_id();
    r.eval_digest = j.job.eval_digest();
    r.report = nlohmann::json::parse(j.report_json, nullptr, /*allow_exceptions=*/false);
    if (r.report.is_discarded()) r.report = nlohmann::json::object();
    if (r.job_id == anchor_job) *anchor = out.size();
    out.push_back(std::move(r));
  }
  return out;
}
#endif

}  // namespace

absl::StatusOr<std::vector<StoredJob>> Coordinator::SucceededJobsOfModel(const std::string& model_digest,
                                                                         const std::string* tenant) {
  // Not under mu_: the read-only connection sees the last committed snapshot
  // (WAL), which includes every job a caller was told had SUCCEEDED.
  std::lock_guard<std::mutex> lk(reader_mu_);
  if (!reader_) {
    SQ_ASSIGN_OR_RETURN(reader_, JobStore::OpenReadOnly(options_.data_dir + "/jobs.db"));
  }
  std::vector<StoredJob> out;
  int64_t before = 0;
  constexpr int kPage = 500;
  while (true) {
    SQ_ASSIGN_OR_RETURN(std::vector<StoredJob> page, reader_->SucceededOfModel(model_digest, before, kPage));
    const bool full_page = static_cast<int>(page.size()) == kPage;
    const int64_t last_row = page.empty() ? before : page.back().row;
    for (StoredJob& j : page) {
      if (tenant == nullptr || j.job.tenant() == *tenant) out.push_back(std::move(j));
    }
    if (!full_page) break;
    before = last_row;
  }
  return out;
}

absl::StatusOr<v1::GetParetoResponse> Coordinator::GetPareto(const v1::GetParetoRequest& request,
                                                             const std::string* tenant) {
  std::string model = request.model_digest(), anchor_job = request.job_id();
  if (absl::StartsWith(model, "sha256:")) model = model.substr(7);
  if (model.empty() == anchor_job.empty()) {
    return absl::InvalidArgumentError("give exactly one of model_digest or job_id");
  }
  if (!model.empty() && !IsHexDigest(model)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_digest: \"", model, "\" is not a sha256 manifest digest (64 lowercase hex digits)"));
  }
  if (!anchor_job.empty()) {
    SQ_ASSIGN_OR_RETURN(v1::Job job, GetJob(anchor_job));
    if (job.state() != v1::SUCCEEDED) {
      return absl::FailedPreconditionError(absl::StrCat("job ", anchor_job, " is ", v1::JobState_Name(job.state()),
                                                        "; the front holds SUCCEEDED jobs"));
    }
    model = job.model_digest();
  }
  SQ_ASSIGN_OR_RETURN(std::vector<StoredJob> jobs, SucceededJobsOfModel(model, tenant));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("model ", model, ": no SUCCEEDED jobs in the store"));
#ifdef SQUEEZE_HAVE_RUNNER
  size_t anchor = 0;
  const std::vector<StoredJobReport> reports = ParseReports(jobs, anchor_job, &anchor);
  SQ_ASSIGN_OR_RETURN(nlohmann::json front, StoreParetoJson(model, reports, anchor));
  v1::GetParetoResponse out;
  out.set_model_digest(model);
  out.set_pareto_json(front.dump());
  out.set_jobs(static_cast<int32_t>(jobs.size()));
  return out;
#else
  return absl::UnimplementedError("this coordinator was built without the report code (workers/runner)");
#endif
}

void Coordinator::AddStoreFront(const v1::Job& job, std::string* report_json) {
#ifdef SQUEEZE_HAVE_RUNNER
  absl::StatusOr<std::vector<StoredJob>> jobs = SucceededJobsOfModel(job.model_digest(), &job.tenant());
  if (!jobs.ok() || jobs->empty()) return;
  size_t anchor = 0;
  const std::vector<StoredJobReport> reports = ParseReports(*jobs, job.job_id(), &anchor);
  if (reports[anchor].job_id != job.job_id()) return;
  absl::StatusOr<nlohmann::json> front = StoreParetoJson(job.model_digest(), reports, anchor);
  if (!front.ok()) return;
  nlohmann::json report = reports[anchor].report;
  if (!report.is_object() || !report.contains("scores") || !report["scores"].is_object()) return;
  nlohmann::json& scores = report["scores"];
  if (!scores["pareto"].is_object()) scores["pareto"] = nlohmann::json::object();
  scores["pareto"]["store"] = *front;
  // The job's ELUE-style score with the store's other variants in its baseline.
  for (const nlohmann::json& v : (*front)["variants"]) {
    if (v.value("kind", "") != "compressed" || v.value("job_id", "") != job.job_id()) continue;
    if (!scores["elue"].is_object()) scores["elue"] = nlohmann::json::object();
    scores["elue"]["store"] = v["elue"];
  }
  *report_json = report.dump();
#else
  (void)job;
  (void)report_json;
#endif
}

}  // namespace squeeze::server
