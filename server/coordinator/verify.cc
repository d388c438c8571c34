#include "server/coordinator/verify.h"

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/coordinator/job_store.h"
#include "server/coordinator/sqlite_db.h"
#include "server/objectstore/local_object_store.h"
#include "server/objectstore/manifest.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze::server {

std::string DataDirReport::Summary() const {
  std::string out = absl::StrCat(ok() ? "OK" : "CORRUPT", ": ", jobs, " jobs, ", events, " events, ", blobs,
                                 " blobs (", bytes, " bytes), ", manifests, " manifests, ", problems.size(),
                                 " problems\n");
  for (const std::string& p : problems) absl::StrAppend(&out, "  ", p, "\n");
  return out;
}

absl::StatusOr<DataDirReport> VerifyDataDir(const std::string& data_dir) {
  namespace fs = std::filesystem;
  DataDirReport r;
  const std::string db_path = data_dir + "/jobs.db";
  std::error_code ec;
  if (!fs::is_regular_file(db_path, ec)) return absl::NotFoundError(absl::StrCat(db_path, ": no such database"));
  // The raw database first: integrity_check reports "ok" or one row per problem.
  {
    SQ_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::OpenReadOnly(db_path));
    SQ_ASSIGN_OR_RETURN(Statement q, db->Prepare("PRAGMA integrity_check"));
    while (true) {
      SQ_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      if (q.Text(0) != "ok") r.problems.push_back(absl::StrCat("jobs.db: integrity_check: ", q.Text(0)));
    }
  }
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> jobs, JobStore::OpenReadOnly(db_path));
  std::vector<StoredJob> all;
  for (int64_t before = 0;;) {
    SQ_ASSIGN_OR_RETURN(std::vector<StoredJob> page, jobs->List(v1::JOB_STATE_UNSPECIFIED, before, 500));
    if (page.empty()) break;
    before = page.back().row;
    for (StoredJob& j : page) all.push_back(std::move(j));
  }
  r.jobs = static_cast<int64_t>(all.size());
  for (const StoredJob& j : all) {
    const std::string& id = j.job.job_id();
    SQ_ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events, jobs->EventsAfter(id, 0, 1 << 30));
    r.events += static_cast<int64_t>(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].seq() != static_cast<int64_t>(i) + 1) {
        r.problems.push_back(absl::StrCat("job ", id, ": event ", i + 1, " has seq ", events[i].seq()));
        break;
      }
    }
    if (static_cast<int64_t>(events.size()) != j.job.last_seq()) {
      r.problems.push_back(absl::StrCat("job ", id, ": last_seq ", j.job.last_seq(), " but ", events.size(), " events"));
    }
  }
  // The object store, then what the jobs point at.
  store::LocalStoreOptions read_only;
  read_only.read_only = true;
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<store::LocalObjectStore> objects,
                      store::LocalObjectStore::Open(data_dir + "/objects", read_only));
  SQ_ASSIGN_OR_RETURN(store::StoreVerifyReport s, objects->Verify());
  r.blobs = s.blobs;
  r.bytes = s.bytes;
  r.manifests = s.manifests;
  for (const std::string& p : s.problems) r.problems.push_back(absl::StrCat("objects: ", p));
  auto check_manifest = [&](const std::string& id, const char* what, const std::string& digest) {
    absl::StatusOr<std::string> json = objects->Get(digest);
    if (!json.ok()) {
      r.problems.push_back(absl::StrCat("job ", id, ": ", what, " ", digest, " is not in the object store"));
    } else if (!store::Manifest::FromJson(*json).ok()) {
      r.problems.push_back(absl::StrCat("job ", id, ": ", what, " ", digest, " is not a manifest"));
    }
  };
  for (const StoredJob& j : all) {
    const std::string& id = j.job.job_id();
    check_manifest(id, "model", j.job.model_digest());
    if (j.job.state() == v1::SUCCEEDED) check_manifest(id, "artifact", j.job.artifact_digest());
    if (!j.checkpoint_digest.empty()) check_manifest(id, "checkpoint", j.checkpoint_digest);
  }
  return r;
}

}  // namespace squeeze::server
