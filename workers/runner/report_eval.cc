#include "workers/runner/report_eval.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/objectstore/sha256.h"
#include "workers/engine/core/status_macros.h"

namespace squeeze {
namespace {

using nlohmann::json;

// The pseudo-task a perplexity text contributes to the scores.
constexpr char kEvalTextTask[] = "eval_text";

json PointScores(const VariantPoint& p) {
  json j = json::object();
  for (const auto& [k, v] : p.scores) j[k] = v;
  return j;
}

json ParetoNames(const std::vector<VariantPoint>& v, const std::function<double(const VariantPoint&)>& cost,
                 const std::vector<std::string>& tasks) {
  const std::vector<bool> opt =
      ParetoOptimal(v, cost, [&](const VariantPoint& p) { return MeanScore(p, tasks); });
  json names = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    if (opt[i]) names.push_back(v[i].name);
  }
  return names;
}

}  // namespace

double ProcessCpuSeconds() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return s(u.ru_utime) + s(u.ru_stime);
}

double TaskScorePercent(const TaskResult& r) {
  return 100.0 * (r.format == TaskFormat::kLanguageModeling ? r.acc : r.acc_norm);
}

absl::StatusOr<std::vector<SampledTask>> LoadReportTasks(const ReportOptions& options) {
  if (options.task_limit < 0) return absl::InvalidArgumentError("report.task_limit: must be >= 0");
  std::vector<SampledTask> out;
  for (const std::string& path : options.task_paths) {
    SampledTask st;
    const bool sample = options.task_seed.has_value() && options.task_limit > 0;
    SQ_ASSIGN_OR_RETURN(st.task, LoadTaskFile(path, sample ? 0 : options.task_limit));
    if (st.task.examples.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no examples"));
    if (sample && static_cast<int64_t>(st.task.examples.size()) > options.task_limit) {
      // A seeded sample, the same for every job with the same seed and file.
      std::vector<int64_t> idx(st.task.examples.size());
      std::iota(idx.begin(), idx.end(), 0);
      std::mt19937_64 rng(*options.task_seed);
      for (int64_t i = 0; i < options.task_limit; ++i) {  // partial Fisher-Yates
        std::uniform_int_distribution<int64_t> pick(i, static_cast<int64_t>(idx.size()) - 1);
        std::swap(idx[i], idx[pick(rng)]);
      }
      idx.resize(options.task_limit);
      std::sort(idx.begin(), idx.end());
      std::vector<TaskExample> kept;
      for (int64_t i : idx) kept.push_back(std::move(st.task.examples[i]));
      st.task.examples = std::move(kept);
      st.indices = std::move(idx);
    }
    st.path = path;
    SQ_ASSIGN_OR_RETURN(st.file_sha256, store::Sha256File(path));
    st.subset_sha256 = store::Sha256Hex(absl::StrCat(
        st.file_sha256, "\n",
        st.indices.empty() ? absl::StrCat("first ", st.task.examples.size()) : json(st.indices).dump()));
    out.push_back(std::move(st));
  }
  return out;
}

json CostJson(const ModelCost& c) {
  json j = {{"params_total", c.params_total},
            {"params_nonzero", c.params_nonzero},
            {"bytes_in_memory", c.bytes_total},
            {"bytes_linears", c.bytes_linears},
            {"macs_per_token", c.macs_per_token},
            {"flops_per_token", c.flops_per_token},
            {"ideal_flops_per_token", c.ideal_flops_per_token},
            {"prefill_flops_per_token", c.prefill_flops_per_token},
            {"macs_linears", c.macs_linears},
            {"macs_linears_ideal", c.macs_linears_ideal},
            {"macs_attention", c.macs_attention},
            {"macs_head", c.macs_head}};
  j["by_kind"] = json::object();
  for (const auto& [kind, k] : c.by_kind) {
    j["by_kind"][kind] = {{"layers", k.layers}, {"params", k.params},           {"nonzero", k.nonzero},
                          {"bytes", k.bytes},   {"kernel_macs", k.kernel_macs}, {"ideal_macs", k.ideal_macs}};
  }
  return j;
}

json TaskResultJson(const TaskResult& r) {
  json t = {{"acc", r.acc}, {"acc_stderr", r.acc_stderr}, {"acc_norm", r.acc_norm},
            {"acc_norm_stderr", r.acc_norm_stderr}};
  if (r.format == TaskFormat::kLanguageModeling) {
    t["perplexity"] = r.perplexity;
    t["token_perplexity"] = r.token_perplexity;
  }
  return t;
}

json AgreementJson(const AgreementResult& a) {
  return {{"positions", a.positions},     {"chunks", a.chunks},
          {"mean_kl", a.mean_kl},         {"kl_stderr", a.kl_stderr},
          {"median_kl", a.median_kl},     {"p99_kl", a.p99_kl},
          {"max_kl", a.max_kl},           {"top1_agreement", a.top1_agreement},
          {"top1_stderr", a.top1_stderr}, {"reference_perplexity", a.reference_perplexity},
          {"model_perplexity", a.model_perplexity}};
}

json LatencyJson(const LatencyResult& l) {
  json points = json::array();
  for (const LatencyPoint& p : l.points) {
    points.push_back({{"batch", p.batch},
                      {"batched", p.batched},  // one ForwardBatch per step (engine/eval/latency.h)
                      {"prompt_len", p.prompt_len},
                      {"decode_tokens", p.decode_tokens},
                      {"repetitions", p.repetitions},
                      {"prefill_ms_per_token_p50", p.prefill_ms_per_token_p50},
                      {"prefill_ms_per_token_p90", p.prefill_ms_per_token_p90},
                      {"prefill_tokens_per_s", p.prefill_tokens_per_s},
                      {"decode_ms_per_token_p50", p.decode_ms_per_token_p50},
                      {"decode_ms_per_token_p90", p.decode_ms_per_token_p90},
                      {"decode_tokens_per_s", p.decode_tokens_per_s},
                      {"decode_steps", p.decode_steps}});
  }
  return {{"points", points},
          {"threads", l.threads},
          {"model_bytes", l.model_bytes},
          {"kv_cache_bytes", l.kv_cache_bytes},
          {"rss_before_bytes", l.rss_before_bytes},
          {"peak_rss_bytes", l.peak_rss_bytes}};
}

absl::Status ReportEvaluator::Prepare() {
  SQ_ASSIGN_OR_RETURN(tasks_, LoadReportTasks(options_));
  return absl::OkStatus();
}

absl::Status ReportEvaluator::Evaluate(const Model& model, const Tokenizer* tokenizer, const PerplexityResult* ppl,
                                       Side* side) {
  side->cost = ComputeModelCost(model, context_);
  if (ppl != nullptr) side->ppl = *ppl;
  if (!tasks_.empty() && tokenizer == nullptr) {
    return absl::FailedPreconditionError("task evaluation needs a tokenizer beside the model");
  }
  side->tasks.clear();
  for (const SampledTask& st : tasks_) {
    TaskOptions to;
    SQ_ASSIGN_OR_RETURN(TaskResult r, EvaluateTask(model, *tokenizer, st.task, to, pool_));
    side->tasks.push_back(std::move(r));
  }
  if (options_.latency) {
    LatencyOptions lo = options_.latency_options;
    const int max_seq = model.config.max_seq_len;
    lo.decode_tokens = std::max(1, std::min(lo.decode_tokens, max_seq / 2));
    lo.prompt_len = std::max(1, std::min(lo.prompt_len, max_seq - lo.decode_tokens));
    SQ_ASSIGN_OR_RETURN(LatencyResult l, MeasureLatency(model, lo, pool_));
    side->latency = std::move(l);
  }
  side->done = true;
  return absl::OkStatus();
}

absl::Status ReportEvaluator::EvaluateDense(const Model& model, const Tokenizer* tokenizer,
                                            const PerplexityResult* ppl, int ppl_seq_len) {
  ppl_seq_len_ = ppl_seq_len;
  context_ = options_.cost_context > 0 ? options_.cost_context
                                       : (ppl_seq_len > 0 ? ppl_seq_len : model.config.max_seq_len);
  return Evaluate(model, tokenizer, ppl, &dense_);
}

absl::Status ReportEvaluator::EvaluateCompressed(const Model& model, const Tokenizer* tokenizer,
                                                 const PerplexityResult* ppl) {
  return Evaluate(model, tokenizer, ppl, &compressed_);
}

absl::Status ReportEvaluator::EvaluateAgreement(const Model& dense, const Model& compressed,
                                                const Tokenizer& tokenizer, const std::string& text) {
  AgreementOptions ao;
  ao.seq_len = ppl_seq_len_;
  ao.max_chunks = options_.agreement_max_chunks;
  absl::StatusOr<AgreementResult> a = squeeze::EvaluateAgreement(dense, compressed, tokenizer, text, ao, pool_);
  if (!a.ok()) {
    // Text shorter than one chunk: no agreement figures, not a failed job.
    if (absl::IsInvalidArgument(a.status())) return absl::OkStatus();
    return a.status();
  }
  agreement_ = *a;
  return absl::OkStatus();
}

VariantPoint ReportEvaluator::Point(const std::string& name, const Side& side) const {
  VariantPoint p;
  p.name = name;
  p.flops_per_token = static_cast<double>(side.cost.flops_per_token);
  p.bytes = static_cast<double>(side.cost.bytes_total);
  if (side.latency && !side.latency->points.empty()) p.latency_ms = side.latency->points.front().decode_ms_per_token_p50;
  if (side.ppl && side.ppl->tokens > 0) p.scores[kEvalTextTask] = 100.0 * std::exp(-side.ppl->nll_per_token);
  for (const TaskResult& r : side.tasks) p.scores[r.name] = TaskScorePercent(r);
  return p;
}

void ReportEvaluator::AddDeterministic(json* report) const {
  json& r = *report;
  // quality
  json quality = json::object();
  if (dense_.ppl && compressed_.ppl) {
    quality["perplexity"] = {{"protocol", "rolling"},
                             {"seq_len", ppl_seq_len_},
                             {"tokens", compressed_.ppl->tokens},
                             {"dense", dense_.ppl->perplexity},
                             {"compressed", compressed_.ppl->perplexity},
                             {"nll_per_token_dense", dense_.ppl->nll_per_token},
                             {"nll_per_token_compressed", compressed_.ppl->nll_per_token},
                             {"bits_per_byte_dense", dense_.ppl->bits_per_byte},
                             {"bits_per_byte_compressed", compressed_.ppl->bits_per_byte}};
  } else {
    quality["perplexity"] = nullptr;
  }
  quality["tasks"] = json::object();
  for (size_t i = 0; i < tasks_.size() && i < dense_.tasks.size() && i < compressed_.tasks.size(); ++i) {
    const SampledTask& st = tasks_[i];
    json t = {{"format", TaskFormatName(st.task.format)},
              {"n", dense_.tasks[i].n},
              {"examples", st.indices.empty() ? json(nullptr) : json(st.indices)},
              {"dense", TaskResultJson(dense_.tasks[i])},
              {"compressed", TaskResultJson(compressed_.tasks[i])}};
    quality["tasks"][st.task.name] = std::move(t);
  }
  quality["agreement"] = agreement_ ? AgreementJson(*agreement_) : json(nullptr);
  json task_names = json::array(), samples = json::object();
  for (const SampledTask& st : tasks_) {
    task_names.push_back(st.task.name);
    samples[st.task.name] = {{"file_sha256", st.file_sha256},
                             {"subset_sha256", st.subset_sha256},
                             {"n", st.task.examples.size()},
                             {"seed", st.indices.empty() ? json(nullptr) : json(*options_.task_seed)}};
  }
  quality["evaluation"] = {{"tasks", task_names},
                           {"task_limit", options_.task_limit},
                           {"task_seed", options_.task_seed ? json(*options_.task_seed) : json(nullptr)},
                           {"agreement", options_.agreement},
                           {"latency", options_.latency},
                           {"packed_activations", PackedActivationsName(options_.packed_activations)}};
  quality["task_samples"] = std::move(samples);
  r["quality"] = std::move(quality);

  // cost (analytic)
  r["cost"] = {{"context_len", context_},
               {"dense", CostJson(dense_.cost)},
               {"compressed", CostJson(compressed_.cost)},
               {"skippable_flops",
                "flops_per_token counts what the kernels run: factorized (low-rank) and N:M sparse layers "
                "multiply only their stored weights; dense-stored and bitmask-stored pruned layers run "
                "full-width, so ideal_flops_per_token (non-zero weights only) is below it for them; quantized "
                "layers save bytes, not FLOPs"}};

  // scores
  const VariantPoint d = Point("dense", dense_), c = Point("compressed", compressed_);
  auto ratio = [](double a, double b) { return b > 0 ? json(a / b) : json(nullptr); };
  json scores = {{"compression_ratio", ratio(d.bytes, c.bytes)},
                 {"param_ratio", ratio(static_cast<double>(dense_.cost.params_nonzero),
                                       static_cast<double>(compressed_.cost.params_nonzero))},
                 {"flops_ratio", ratio(d.flops_per_token, c.flops_per_token)},
                 {"ideal_flops_ratio", ratio(static_cast<double>(dense_.cost.ideal_flops_per_token),
                                             static_cast<double>(compressed_.cost.ideal_flops_per_token))},
                 {"task_scores", {{"dense", PointScores(d)}, {"compressed", PointScores(c)}}}};
  absl::StatusOr<ElueResult> elue = ElueScore(c, {d});
  if (elue.ok()) {
    json per_task = json::object(), baseline = json::object();
    for (const auto& [k, v] : elue->per_task) per_task[k] = v;
    for (const auto& [k, v] : elue->baseline) baseline[k] = v;
    scores["elue"] = {{"score", elue->score}, {"per_task", per_task}, {"baseline", baseline},
                      {"references", {"dense"}}};
  } else {
    scores["elue"] = nullptr;
  }
  const std::vector<VariantPoint> v = {d, c};
  const std::vector<std::string> tasks = CommonTasks(v);
  if (!tasks.empty()) {
    scores["pareto"] = {{"quality_tasks", tasks},
                        {"bytes", ParetoNames(v, [](const VariantPoint& p) { return p.bytes; }, tasks)},
                        {"flops", ParetoNames(v, [](const VariantPoint& p) { return p.flops_per_token; }, tasks)}};
  } else {
    scores["pareto"] = nullptr;
  }
  r["scores"] = std::move(scores);
}

void ReportEvaluator::AddMeasured(json* report,
                                  const std::map<std::string, std::pair<double, double>>& stage_seconds,
                                  double job_wall_s, double job_cpu_s) const {
  MeasuredDevice cpu;
  cpu.requested = "cpu";
  cpu.reason = "not recorded";
  AddMeasured(report, stage_seconds, job_wall_s, job_cpu_s, cpu);
}

void ReportEvaluator::AddMeasured(json* report,
                                  const std::map<std::string, std::pair<double, double>>& stage_seconds,
                                  double job_wall_s, double job_cpu_s, const MeasuredDevice& device) const {
  json& r = *report;
  if (dense_.latency && compressed_.latency) {
    r["cost"]["latency"] = {{"dense", LatencyJson(*dense_.latency)},
                            {"compressed", LatencyJson(*compressed_.latency)}};
    r["cost"]["peak_rss_bytes"] = std::max(dense_.latency->peak_rss_bytes, compressed_.latency->peak_rss_bytes);
    const VariantPoint d = Point("dense", dense_), c = Point("compressed", compressed_);
    const std::vector<VariantPoint> v = {d, c};
    const std::vector<std::string> tasks = CommonTasks(v);
    if (!tasks.empty() && r.contains("scores") && r["scores"]["pareto"].is_object()) {
      r["scores"]["pareto"]["latency"] = ParetoNames(v, [](const VariantPoint& p) { return p.latency_ms; }, tasks);
    }
  }
  double stages_wall = 0, stages_cpu = 0, stages_gpu = 0;
  int64_t gpu_modules = 0;
  if (r.contains("stages") && r["stages"].is_array()) {
    for (json& s : r["stages"]) {
      const std::string key = absl::StrCat("stage:", s.value("name", std::string()));
      auto it = stage_seconds.find(key);
      if (it == stage_seconds.end()) continue;
      s["wall_s"] = it->second.first;
      s["cpu_s"] = it->second.second;
      auto d = device.stages.find(key);
      const StageDeviceFigures f = d != device.stages.end() ? d->second : StageDeviceFigures{};
      // "cuda" only when some module's work really ran on the GPU.
      const bool on_gpu = f.usage.gpu_modules > 0;
      s["gpu_s"] = on_gpu ? f.gpu_s : 0.0;
      s["device"] = on_gpu ? "cuda" : "cpu";
      if (device.selected == "cuda") {
        s["gpu_modules"] = f.usage.gpu_modules;
        s["cpu_fallbacks"] = f.usage.cpu_fallbacks;
        s["device_notes"] = f.usage.fallback_notes;
      }
      stages_wall += it->second.first;
      stages_cpu += it->second.second;
      if (on_gpu) stages_gpu += f.gpu_s;
      gpu_modules += f.usage.gpu_modules;
    }
  }
  r["device"] = {{"requested", device.requested},
                 {"selected", device.selected},
                 {"description", device.description},
                 {"reason", device.reason}};
  std::string gpu_text;
  if (gpu_modules > 0) {
    gpu_text = absl::StrCat(device.description, ": ", gpu_modules, " module(s) ran on the GPU");
  } else if (device.selected == "cuda") {
    gpu_text = absl::StrCat("no GPU used: device cuda (", device.description,
                            ") selected but no stage's work ran on it");
  } else {
    gpu_text = absl::StrCat("no GPU used: device cpu (", device.reason, "), every stage ran on the CPU");
  }
  const double dense_ms = dense_.latency && !dense_.latency->points.empty()
                              ? dense_.latency->points.front().decode_ms_per_token_p50 : 0;
  const double comp_ms = compressed_.latency && !compressed_.latency->points.empty()
                             ? compressed_.latency->points.front().decode_ms_per_token_p50 : 0;
  const HulkResult h = HulkCost(stages_wall, stages_cpu, dense_ms, comp_ms);
  r["scores"]["hulk"] = {{"compression_wall_s", h.compression_wall_s},
                         {"compression_cpu_s", h.compression_cpu_s},
                         {"job_wall_s", job_wall_s},
                         {"job_cpu_s", job_cpu_s},
                         {"gpu_s", stages_gpu},
                         {"gpu", gpu_text},
                         {"saved_ms_per_token", h.saved_ms_per_token},
                         {"break_even_tokens", h.break_even_tokens < 0 ? json(nullptr) : json(h.break_even_tokens)}};
}

}  // namespace squeeze
