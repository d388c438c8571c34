#include "workers/runner/stage_runner.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "workers/engine/calib/activation_stats.h"
#include "workers/engine/calib/sequential.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/eval/cost.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/methods/prune/layer_removal.h"
#include "workers/runner/checkpoint.h"
#include "workers/runner/compressed_model.h"
#include "workers/runner/report_render.h"

namespace squeeze {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Sizes of a model: parameters, non-zero parameters, in-memory bytes.
json ModelSize(Model& model) {
  int64_t params = 0, nonzero = 0, bytes = 0, linear_params = 0, linear_nonzero = 0, linear_bytes = 0;
  params += model.embedding.size();
  nonzero += (model.embedding.array() != 0.0f).count();
  bytes += model.embedding.size() * static_cast<int64_t>(sizeof(float));
  auto add_vec = [&](const std::vector<float>& v) {
    params += static_cast<int64_t>(v.size());
    for (float x : v) nonzero += x != 0.0f;
    bytes += static_cast<int64_t>(v.size() * sizeof(float));
  };
  for (const TransformerBlock& b : model.blocks) {
    add_vec(b.attn_norm);
    add_vec(b.ffn_norm);
  }
  add_vec(model.final_norm);
  for (const LinearSlot& s : model.AllLinears()) {
    const LinearLayer& l = **s.slot;
    int64_t n = 0, nz = 0;
    if (IsFactorizedKind(l.kind())) {
      // A factorized layer holds rank * (in + out) weights, not the in x out
      // product DenseWeight() would reconstruct.
      n = nz = l.NonZeroWeights();
    } else {
      const MatrixRM w = l.DenseWeight();
      n = w.size();
      nz = (w.array() != 0.0f).count();
    }
    linear_params += n + static_cast<int64_t>(l.bias().size());
    linear_nonzero += nz;
    for (float x : l.bias()) linear_nonzero += x != 0.0f;
    linear_bytes += l.StorageBytes();
  }
  return {{"params", params + linear_params},
          {"nonzero_params", nonzero + linear_nonzero},
          {"memory_bytes", bytes + linear_bytes},
          {"linear_params", linear_params},
          {"linear_nonzero_params", linear_nonzero},
          {"linear_memory_bytes", linear_bytes}};
}

// Mean of each metric over a layer's module reports.
std::map<std::string, double> MeanMetrics(const std::vector<ModuleReport>& reports) {
  std::map<std::string, double> sum;
  std::map<std::string, int> count;
  for (const ModuleReport& r : reports) {
    for (const auto& [k, v] : r.metrics) {
      sum[k] += v;
      ++count[k];
    }
  }
  for (auto& [k, v] : sum) v /= count[k];
  return sum;
}

json LayerJson(int layer, const std::vector<ModuleReport>& reports) {
  json modules = json::array();
  for (const ModuleReport& r : reports) {
    json m = {{"name", r.module}, {"modifier", r.modifier}, {"kind", r.kind}};
    for (const auto& [k, v] : r.metrics) m[k] = v;
    modules.push_back(std::move(m));
  }
  json mean = json::object();
  for (const auto& [k, v] : MeanMetrics(reports)) mean[k] = v;
  return {{"layer", layer}, {"modules", std::move(modules)}, {"mean", std::move(mean)}};
}

std::string LayerMessage(int layer, int n_layers, const std::vector<ModuleReport>& reports) {
  std::string m = layer < n_layers ? absl::StrCat("layer ", layer) : std::string("lm_head");
  absl::StrAppend(&m, ": ", reports.size(), " modules");
  const auto mean = MeanMetrics(reports);
  if (auto it = mean.find("sparsity"); it != mean.end()) absl::StrAppend(&m, absl::StrFormat(", sparsity %.3f", it->second));
  if (auto it = mean.find("rel_error"); it != mean.end()) absl::StrAppend(&m, absl::StrFormat(", rel_error %.4f", it->second));
  return m;
}

// The targets of `modifier` in layer unit `layer` (n_layers = lm_head).
std::vector<LayerContext::Target> SelectTargets(Model& model, int layer, const Modifier& modifier) {
  std::vector<LayerContext::Target> out;
  const int n_layers = static_cast<int>(model.blocks.size());
  if (layer < n_layers) {
    std::vector<LinearSlot> slots = model.BlockLinears(layer);
    for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
      if (modifier.matcher().Matches(slots[i].name)) out.push_back({slots[i], i});
    }
  } else if (model.lm_head && modifier.matcher().Matches("lm_head")) {
    out.push_back({LinearSlot{"lm_head", -1, &model.lm_head}, -1});
  }
  return out;
}

class Runner {
 public:
  Runner(const Recipe& recipe, const RunOptions& options, ProgressSink& progress, RunControl& control)
      : recipe_(recipe), options_(options), progress_(progress), control_(control) {}

  absl::StatusOr<RunResult> Run();

 private:
  absl::Status Emit(const std::string& stage, const std::string& unit, int64_t i, int64_t n, std::string message,
                    std::map<std::string, double> metrics = {}) {
    ProgressEvent e{stage, unit, i, n, std::move(message), std::move(metrics)};
    progress_.OnProgress(e);
    return absl::OkStatus();
  }
  // Checks the control at a layer boundary; a stop writes the checkpoint.
  absl::Status AtBoundary(int stage, int next_layer);
  // The run's identity for checkpoints (checkpoint.h), by content; computed
  // on first use (it may hash the inputs when no digests were given).
  absl::StatusOr<json> Fingerprint();
  // Loads the checkpoint in work_dir_, if any (honours discard_unusable_checkpoint).
  absl::StatusOr<std::optional<CheckpointPosition>> LoadCheckpoint();
  absl::Status ApplyLayer(int stage, int layer, std::vector<std::unique_ptr<Modifier>>& mods,
                          const LayerInputs* inputs);
  absl::StatusOr<std::vector<std::vector<int>>> CalibrationSequences();
  absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTok();
  absl::Status RunStage(int s, int start_layer);
  // Asks the stage's modifiers for blocks to remove and removes them; returns
  // the stage report's "layer_removal" entry (null when none was removed).
  absl::StatusOr<json> RemoveLayers(int s, std::vector<std::unique_ptr<Modifier>>& mods);
  absl::Status WriteArtifacts(const json& report);
  const ModifierRegistry& Registry() const {
    return options_.registry ? *options_.registry : ModifierRegistry::Builtin();
  }

  const Recipe& recipe_;
  const RunOptions& options_;
  ProgressSink& progress_;
  RunControl& control_;
  ThreadPool* pool_ = nullptr;
  std::unique_ptr<ThreadPool> own_pool_;
  uint64_t seed_ = 0;
  std::string work_dir_;
  std::optional<json> fingerprint_;
  Model model_;
  std::set<std::string> changed_;  // modules replaced so far
  std::vector<std::vector<int>> removed_layers_;  // per removal, in order (checkpoint.h)
  json stages_report_ = json::array();
  std::optional<std::vector<std::vector<int>>> calib_;
  std::string tokenizer_path_;
  Device device_;                             // selected in Run() before any work
  std::vector<StageDeviceUsage> stage_device_;  // per stage (measured, not in the artifact)
};

absl::StatusOr<std::unique_ptr<Tokenizer>> Runner::LoadTok() {
  if (tokenizer_path_.empty()) {
    auto p = FindTokenizerFor(options_.model_path);
    if (!p.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("a tokenizer is needed to read calibration / evaluation text: ", p.status().message()));
    }
    tokenizer_path_ = *p;
  }
  return LoadTokenizer(tokenizer_path_);
}

absl::StatusOr<std::vector<std::vector<int>>> Runner::CalibrationSequences() {
  if (calib_) return *calib_;
  if (options_.calib_text_path.empty()) {
    return absl::FailedPreconditionError(
        "this recipe has modifiers that need calibration data, but no calibration text was given "
        "(squeeze run --calib FILE)");
  }
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(options_.calib_text_path));
  SQ_ASSIGN_OR_RETURN(auto tok, LoadTok());
  const std::vector<int> ids = tok->Encode(text, /*add_bos=*/false);
  const int64_t len = std::max<int64_t>(
      2, std::min<int64_t>(recipe_.calibration.max_seq_length, model_.config.max_seq_len));
  // Consecutive windows of len - 1 tokens, each after a BOS token.
  std::vector<std::vector<int>> seqs;
  for (size_t p = 0; p < ids.size() && static_cast<int64_t>(seqs.size()) < recipe_.calibration.num_calibration_samples;
       p += len - 1) {
    std::vector<int> s;
    if (tok->bos_id() >= 0) s.push_back(tok->bos_id());
    for (size_t i = p; i < ids.size() && static_cast<int64_t>(s.size()) < len; ++i) s.push_back(ids[i]);
    if (s.size() >= 2) seqs.push_back(std::move(s));
  }
  if (seqs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(options_.calib_text_path, ": calibration text is empty"));
  }
  calib_ = std::move(seqs);
  return *calib_;
}

absl::Status Runner::AtBoundary(int stage, int next_layer) {
  if (control_.cancel_requested()) return absl::CancelledError("cancelled at a layer boundary");
  if (!control_.stop_requested()) return absl::OkStatus();
  CheckpointPosition pos;
  pos.stage = stage;
  pos.next_layer = next_layer;
  pos.report = stages_report_;
  pos.removed_layers = removed_layers_;
  SQ_ASSIGN_OR_RETURN(json fingerprint, Fingerprint());
  SQ_RETURN_IF_ERROR(SaveRunCheckpoint(work_dir_, fingerprint, model_, changed_, pos));
  return absl::AbortedError(absl::StrCat(kStoppedPrefix, ": stage ", recipe_.stages[stage].name, ", ",
                                         next_layer, " layers done; checkpoint in ", work_dir_,
                                         "; run again with the same work dir to resume"));
}

absl::StatusOr<json> Runner::Fingerprint() {
  if (fingerprint_) return *fingerprint_;
  auto digest = [](const std::string& given, const std::string& path) -> absl::StatusOr<std::string> {
    if (!given.empty() || path.empty()) return given;
    return ContentDigest(path);
  };
  SQ_ASSIGN_OR_RETURN(std::string model, digest(options_.model_digest, options_.model_path));
  SQ_ASSIGN_OR_RETURN(std::string calib, digest(options_.calib_digest, options_.calib_text_path));
  SQ_ASSIGN_OR_RETURN(std::string eval, digest(options_.eval_digest, options_.eval_text_path));
  json fp = {{"recipe", SerializeRecipe(recipe_)},
             {"model", model},
             {"seed", seed_},
             {"calib", calib},
             {"eval", eval},
             {"eval_max_bytes", options_.eval_max_bytes},
             {"eval_seq_len", options_.eval_seq_len}};
  // A llama2.c .bin reads its tokenizer from beside it: part of the input.
  std::error_code ec;
  if (options_.model_digest.empty() && fs::is_regular_file(options_.model_path, ec)) {
    if (auto tok = FindTokenizerFor(options_.model_path); tok.ok()) {
      SQ_ASSIGN_OR_RETURN(fp["tokenizer"], ContentDigest(*tok));
    }
  }
  fingerprint_ = std::move(fp);
  return *fingerprint_;
}

absl::StatusOr<std::optional<CheckpointPosition>> Runner::LoadCheckpoint() {
  if (!HasRunCheckpoint(work_dir_)) return std::optional<CheckpointPosition>();
  SQ_ASSIGN_OR_RETURN(json fingerprint, Fingerprint());
  absl::StatusOr<std::optional<CheckpointPosition>> pos =
      LoadRunCheckpoint(work_dir_, fingerprint, model_, &changed_);
  if (pos.ok() && *pos && (*pos)->stage > static_cast<int>(recipe_.stages.size())) {
    // Same fingerprint (so same recipe) yet past its end: the model was already
    // changed, so this cannot fall back to zero.
    return absl::InvalidArgumentError(absl::StrCat(work_dir_, "/checkpoint.json: bad position"));
  }
  if (pos.ok() || !options_.discard_unusable_checkpoint) return pos;
  // LoadRunCheckpoint is all or nothing: the model is still the input model.
  SQ_RETURN_IF_ERROR(Emit("resume", "model", 0, 1,
                          absl::StrCat("checkpoint unusable, starting from zero: ", pos.status().message())));
  SQ_RETURN_IF_ERROR(RemoveRunCheckpoint(work_dir_));
  return std::optional<CheckpointPosition>();
}

absl::Status Runner::ApplyLayer(int stage, int layer, std::vector<std::unique_ptr<Modifier>>& mods,
                                const LayerInputs* inputs) {
  std::vector<ModuleReport> reports;
  for (auto& m : mods) {
    LayerContext ctx;
    ctx.model = &model_;
    ctx.layer = layer;
    ctx.targets = SelectTargets(model_, layer, *m);
    if (ctx.targets.empty()) continue;
    ctx.inputs = m->needs_calibration() ? inputs : nullptr;
    if (m->needs_calibration() && inputs == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          m->type(), ": lm_head cannot be calibrated; add lm_head to its ignore list"));
    }
    ctx.pool = pool_;
    ctx.seed = seed_;
    ctx.input_model_path = options_.model_path;
    ctx.calibration_text_path = options_.calib_text_path;
    ctx.stage_report = &stages_report_[stage];
    ctx.device = &device_;
    ctx.device_usage = &stage_device_[stage];
    ctx.progress = [this, stage](const std::string& unit, int64_t i, int64_t n, const std::string& message,
                                 const std::map<std::string, double>& metrics) {
      (void)Emit(recipe_.stages[stage].name, unit, i, n, message, metrics);
    };
    SQ_RETURN_IF_ERROR(m->ApplyToLayer(ctx, &reports));
  }
  for (const ModuleReport& r : reports) changed_.insert(r.module);
  const int n_layers = static_cast<int>(model_.blocks.size());
  stages_report_[stage]["layers"].push_back(LayerJson(layer, reports));
  return Emit(recipe_.stages[stage].name, "layer", layer + 1,
              stages_report_[stage]["n_layers"].get<int64_t>(), LayerMessage(layer, n_layers, reports),
              MeanMetrics(reports));
}

absl::StatusOr<json> Runner::RemoveLayers(int s, std::vector<std::unique_ptr<Modifier>>& mods) {
  json out = nullptr;
  for (auto& m : mods) {
    std::vector<std::vector<int>> seqs;
    if (m->needs_calibration()) {
      SQ_ASSIGN_OR_RETURN(seqs, CalibrationSequences());
    }
    json details = json::object();
    SQ_ASSIGN_OR_RETURN(std::vector<int> layers, m->LayersToRemove(model_, seqs, *pool_, &details));
    if (layers.empty()) continue;
    std::sort(layers.begin(), layers.end());
    const int n = static_cast<int>(model_.blocks.size());
    const std::vector<int> source_before =
        static_cast<int>(model_.config.source_layers.size()) == n ? model_.config.source_layers : std::vector<int>();
    SQ_RETURN_IF_ERROR(RemoveBlocks(model_, layers));
    removed_layers_.push_back(layers);
    // Renumber the modules changed so far; those of removed blocks are gone.
    std::vector<int> new_index(n, -1);
    for (int l = 0, k = 0; l < n; ++l) {
      if (!std::binary_search(layers.begin(), layers.end(), l)) new_index[l] = k++;
    }
    std::set<std::string> renamed;
    for (const std::string& name : changed_) {
      constexpr absl::string_view kPrefix = "model.layers.";
      const size_t dot = name.find('.', kPrefix.size());
      int l = -1;
      if (absl::StartsWith(name, kPrefix) && dot != std::string::npos &&
          absl::SimpleAtoi(absl::string_view(name).substr(kPrefix.size(), dot - kPrefix.size()), &l) && l >= 0 &&
          l < n) {
        if (new_index[l] >= 0) renamed.insert(absl::StrCat(kPrefix, new_index[l], name.substr(dot)));
      } else {
        renamed.insert(name);
      }
    }
    changed_ = std::move(renamed);
    if (out.is_null()) out = json::array();
    json entry = {{"modifier", m->type()}, {"removed_layers", layers},
                  {"n_layers_before", n}, {"n_layers_after", static_cast<int>(model_.blocks.size())}};
    if (!source_before.empty()) {
      json original = json::array();
      for (int l : layers) original.push_back(source_before[l]);
      entry["removed_source_layers"] = std::move(original);
    }
    entry["kept_source_layers"] = model_.config.source_layers;
    if (!details.empty()) entry["details"] = std::move(details);
    SQ_RETURN_IF_ERROR(Emit(recipe_.stages[s].name, "model", 1, 1,
                            absl::StrCat(m->type(), ": removed layers ", absl::StrJoin(layers, ", "), " of ", n),
                            {{"removed_layers", static_cast<double>(layers.size())}}));
    out.push_back(std::move(entry));
  }
  return out;
}

absl::Status Runner::RunStage(int s, int start_layer) {
  const RecipeStage& stage = recipe_.stages[s];
  SQ_ASSIGN_OR_RETURN(auto mods, BuildStageModifiers(stage, Registry()));
  // Whole-layer removal (Modifier::LayersToRemove) when the stage starts; a
  // resumed stage (its report exists) had it replayed by the checkpoint.
  json removal;
  if (static_cast<int>(stages_report_.size()) <= s) {
    SQ_ASSIGN_OR_RETURN(removal, RemoveLayers(s, mods));
  }
  const int n_layers = static_cast<int>(model_.blocks.size());
  bool head = false, calibrated = false, xtx = false;
  for (auto& m : mods) {
    head = head || !SelectTargets(model_, n_layers, *m).empty();
    calibrated = calibrated || m->needs_calibration();
    xtx = xtx || (m->needs_calibration() && m->needs_xtx());
  }
  const int units = n_layers + (head ? 1 : 0);
  if (static_cast<int>(stages_report_.size()) <= s) {
    json modifiers = json::array();
    for (const RecipeModifier& m : stage.modifiers) modifiers.push_back(m.type);
    stages_report_.push_back({{"name", stage.name}, {"modifiers", modifiers}, {"n_layers", units},
                              {"layers", json::array()}});
    if (!removal.is_null()) stages_report_[s]["layer_removal"] = std::move(removal);
  }
  if (!calibrated) {
    for (int l = start_layer; l < units; ++l) {
      SQ_RETURN_IF_ERROR(AtBoundary(s, l));
      SQ_RETURN_IF_ERROR(ApplyLayer(s, l, mods, nullptr));
    }
    return absl::OkStatus();
  }
  SQ_ASSIGN_OR_RETURN(auto seqs, CalibrationSequences());
  // Whole-model preparation (Modifier::PrepareStage); what it decided is kept
  // in the stage report, and a resumed stage restores it instead.
  if (stages_report_[s].contains("prepared")) {
    const json& prepared = stages_report_[s]["prepared"];
    for (size_t i = 0; i < mods.size() && i < prepared.size(); ++i) {
      if (!prepared[i].is_null()) SQ_RETURN_IF_ERROR(mods[i]->RestorePrepared(prepared[i]));
    }
  } else {
    json prepared = json::array();
    bool any = false;
    for (auto& m : mods) {
      json p;
      if (m->needs_calibration()) {
        SQ_ASSIGN_OR_RETURN(p, m->PrepareStage(model_, seqs, *pool_));
      }
      any = any || !p.is_null();
      prepared.push_back(std::move(p));
    }
    if (any) stages_report_[s]["prepared"] = std::move(prepared);
  }
  std::array<std::unique_ptr<ActivationStats>, kNumBlockLinears> stats;
  SequentialHooks hooks;
  hooks.on_input = [&](const LinearInput& in) {
    if (in.layer < start_layer) return;
    auto& st = stats[static_cast<int>(in.which)];
    if (!st) st = std::make_unique<ActivationStats>(in.cols, xtx);
    // q/k/v (gate/up) share one input: count it once, on the first of them.
    if (in.which == BlockLinear::kK || in.which == BlockLinear::kV || in.which == BlockLinear::kUp) return;
    st->Add(in.x, in.rows, *pool_);
  };
  hooks.on_block_done = [&](int layer, Model&) -> absl::StatusOr<bool> {
    if (layer < start_layer) return false;
    SQ_RETURN_IF_ERROR(AtBoundary(s, layer));
    LayerInputs inputs;
    inputs.n_sequences = static_cast<int64_t>(seqs.size());
    for (int w = 0; w < kNumBlockLinears; ++w) {
      int src = w;
      if (w == static_cast<int>(BlockLinear::kK) || w == static_cast<int>(BlockLinear::kV)) src = 0;
      if (w == static_cast<int>(BlockLinear::kUp)) src = static_cast<int>(BlockLinear::kGate);
      inputs.stats[w] = stats[src].get();
    }
    SQ_RETURN_IF_ERROR(ApplyLayer(s, layer, mods, &inputs));
    for (auto& st : stats) st.reset();
    return true;
  };
  SQ_RETURN_IF_ERROR(RunSequentialCalibration(model_, seqs, hooks, *pool_));
  if (head) {
    SQ_RETURN_IF_ERROR(AtBoundary(s, n_layers));
    SQ_RETURN_IF_ERROR(ApplyLayer(s, n_layers, mods, nullptr));
  }
  return absl::OkStatus();
}

absl::Status Runner::WriteArtifacts(const json& report_without_files) {
  const std::string out = options_.output_dir;
  const std::string tmp = out + ".partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  SQ_RETURN_IF_ERROR(SaveModel(model_, tmp));
  if (!tokenizer_path_.empty() || FindTokenizerFor(options_.model_path).ok()) {
    if (tokenizer_path_.empty()) tokenizer_path_ = *FindTokenizerFor(options_.model_path);
    SQ_ASSIGN_OR_RETURN(std::string tok, ReadFileToString(tokenizer_path_));
    SQ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/" + fs::path(tokenizer_path_).filename().string(), tok));
  }
  SQ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/recipe.yaml", SerializeRecipe(recipe_)));
  json report = report_without_files;
  json files = json::object();
  for (const auto& de : fs::directory_iterator(tmp)) {
    files[de.path().filename().string()] = static_cast<int64_t>(de.file_size());
  }
  report["files_bytes"] = files;  // sizes of the other files (report.json excluded)
  SQ_RETURN_IF_ERROR(WriteFileAtomically(tmp + "/report.json", report.dump(2) + "\n"));
  if (report.contains("cost")) SQ_RETURN_IF_ERROR(WriteReportFiles(tmp, report));  // report.md, pareto.svg
  if (fs::exists(out, ec)) {
    fs::remove(out, ec);  // an empty directory (checked at the start)
    if (ec) return absl::InternalError(absl::StrCat(out, ": ", ec.message()));
  }
  fs::rename(tmp, out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", out, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<RunResult> Runner::Run() {
  const auto t_total = Clock::now();
  RunResult result;
  if (options_.model_path.empty()) return absl::InvalidArgumentError("no model path given");
  if (options_.output_dir.empty()) return absl::InvalidArgumentError("no output directory given");
  std::error_code ec;
  if (fs::exists(options_.output_dir, ec) &&
      (!fs::is_directory(options_.output_dir, ec) || !fs::is_empty(options_.output_dir, ec))) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.output_dir, ": output directory exists and is not empty"));
  }
  if (options_.threads > 0) {
    own_pool_ = std::make_unique<ThreadPool>(options_.threads);
    pool_ = own_pool_.get();
  } else {
    pool_ = &ThreadPool::Default();
  }
  seed_ = recipe_.calibration.seed.value_or(options_.seed);
  SQ_ASSIGN_OR_RETURN(device_, SelectDevice(options_.device, "device"));
  stage_device_.assign(recipe_.stages.size(), StageDeviceUsage{});
  work_dir_ = options_.work_dir.empty() ? options_.output_dir + ".work" : options_.work_dir;
  // Validate every stage's modifiers before any work.
  for (const RecipeStage& s : recipe_.stages) SQ_RETURN_IF_ERROR(BuildStageModifiers(s, Registry()).status());
  ReportEvaluator evaluator(options_.report, *pool_);  // the evaluation stage (report_eval.h)
  SQ_RETURN_IF_ERROR(evaluator.Prepare());
  const double cpu0 = ProcessCpuSeconds();
  std::map<std::string, std::pair<double, double>> stage_seconds;  // wall, CPU
  MeasuredDevice measured_device;  // device and GPU seconds per stage (report_eval.h)
  measured_device.requested = std::string(DeviceRequestName(options_.device));
  measured_device.selected = std::string(DeviceKindName(device_.kind));
  measured_device.description = device_.description;
  measured_device.reason = device_.reason;
  std::optional<PerplexityResult> ppl_before, ppl_after;

  auto t = Clock::now();
  SQ_RETURN_IF_ERROR(Emit("load", "model", 0, 1, absl::StrCat("loading ", options_.model_path)));
  SQ_ASSIGN_OR_RETURN(model_, LoadCompressedModel(options_.model_path));
  SQ_RETURN_IF_ERROR(ValidateModel(model_));
  // The recipe against the model's shapes (e.g. N:M masks) before any work.
  SQ_RETURN_IF_ERROR(CheckRecipeForModel(recipe_, model_.config, Registry()));
  SQ_RETURN_IF_ERROR(Emit("load", "model", 1, 1, "model loaded"));
  const json size_before = ModelSize(model_);
  result.timings_s["load"] = Seconds(t);

  // Perplexity before (always recomputed, also on resume: deterministic).
  std::vector<std::string> eval_docs;
  std::unique_ptr<Tokenizer> eval_tok;
  PerplexityOptions ppl_options;
  ppl_options.seq_len = options_.eval_seq_len;
  json ppl = nullptr;
  if (!options_.eval_text_path.empty()) {
    t = Clock::now();
    SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(options_.eval_text_path));
    if (options_.eval_max_bytes > 0 && static_cast<int64_t>(text.size()) > options_.eval_max_bytes) {
      size_t n = static_cast<size_t>(options_.eval_max_bytes);
      while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;  // UTF-8 boundary
      text.resize(n);
    }
    eval_docs = SplitDocuments(text, "<|endoftext|>");
    SQ_ASSIGN_OR_RETURN(eval_tok, LoadTok());
    SQ_RETURN_IF_ERROR(Emit("eval", "eval", 0, 2, "perplexity before"));
    SQ_ASSIGN_OR_RETURN(PerplexityResult before, EvaluatePerplexity(model_, *eval_tok, eval_docs, ppl_options, *pool_));
    ppl_before = before;
    ppl = {{"before", before.perplexity}, {"nll_per_token_before", before.nll_per_token},
           {"bits_per_byte_before", before.bits_per_byte}, {"tokens", before.tokens},
           {"protocol", "rolling"}, {"seq_len", options_.eval_seq_len > 0 ? options_.eval_seq_len : model_.config.max_seq_len}};
    SQ_RETURN_IF_ERROR(Emit("eval", "eval", 1, 2, absl::StrFormat("perplexity before: %.4f", before.perplexity),
                            {{"perplexity_before", before.perplexity}}));
    result.timings_s["eval_before"] = Seconds(t);
  }
  std::unique_ptr<Tokenizer> task_tok;
  if (!options_.report.task_paths.empty() && !eval_tok) {
    SQ_ASSIGN_OR_RETURN(task_tok, LoadTok());
  }
  const Tokenizer* report_tok = eval_tok ? eval_tok.get() : task_tok.get();
  t = Clock::now();
  SQ_RETURN_IF_ERROR(Emit("eval", "eval", 0, 1, "evaluating the dense model (tasks, latency)"));
  SQ_RETURN_IF_ERROR(evaluator.EvaluateDense(model_, report_tok, ppl_before ? &*ppl_before : nullptr,
                                             options_.eval_seq_len > 0 ? options_.eval_seq_len : model_.config.max_seq_len));
  result.timings_s["eval_dense"] = Seconds(t);

  SQ_ASSIGN_OR_RETURN(std::optional<CheckpointPosition> pos, LoadCheckpoint());
  int first_stage = 0, first_layer = 0;
  if (pos) {
    const std::string at = pos->stage < static_cast<int>(recipe_.stages.size())
                               ? absl::StrCat("stage ", recipe_.stages[pos->stage].name, ", layer ", pos->next_layer)
                               : std::string("after the last stage");
    SQ_RETURN_IF_ERROR(Emit("resume", "model", 1, 1, absl::StrCat("resumed from checkpoint at ", at),
                            {{"resume_stage", pos->stage}, {"resume_layer", pos->next_layer}}));
    result.resumed = true;
    first_stage = pos->stage;
    first_layer = pos->next_layer;
    stages_report_ = pos->report;
    removed_layers_ = pos->removed_layers;
  }
  for (int s = first_stage; s < static_cast<int>(recipe_.stages.size()); ++s) {
    t = Clock::now();
    const double c0 = ProcessCpuSeconds();
    const double g0 = ProcessGpuSeconds();
    SQ_RETURN_IF_ERROR(RunStage(s, s == first_stage ? first_layer : 0));
    result.timings_s["stage:" + recipe_.stages[s].name] = Seconds(t);
    stage_seconds["stage:" + recipe_.stages[s].name] = {Seconds(t), ProcessCpuSeconds() - c0};
    StageDeviceFigures& f = measured_device.stages["stage:" + recipe_.stages[s].name];
    f.gpu_s = ProcessGpuSeconds() - g0;
    f.usage = stage_device_[s];
  }

  // The compressed model is evaluated with the requested activation
  // arithmetic of its packed layers (saving does not depend on it).
  if (options_.report.packed_activations != PackedActivations::kFp32) {
    const int64_t layers = SetPackedActivations(model_, options_.report.packed_activations);
    SQ_RETURN_IF_ERROR(Emit("eval", "eval", 0, 2,
                            absl::StrCat("evaluating with ", PackedActivationsName(options_.report.packed_activations),
                                         " activations in ", layers, " packed layers")));
  }
  json report = {{"format", "squeeze-report-v1"},
                 {"model", {{"architecture", model_.config.architecture},
                            {"n_layers", model_.config.n_layers},
                            {"dim", model_.config.dim},
                            {"hidden_dim", model_.config.hidden_dim},
                            {"vocab_size", model_.config.vocab_size}}},
                 {"seed", seed_},
                 {"stages", stages_report_},
                 {"size", {{"before", size_before}, {"after", ModelSize(model_)}}}};
  if (!options_.eval_text_path.empty()) {
    t = Clock::now();
    SQ_RETURN_IF_ERROR(Emit("eval", "eval", 1, 2, "perplexity after"));
    SQ_ASSIGN_OR_RETURN(PerplexityResult after, EvaluatePerplexity(model_, *eval_tok, eval_docs, ppl_options, *pool_));
    ppl_after = after;
    ppl["after"] = after.perplexity;
    ppl["nll_per_token_after"] = after.nll_per_token;
    ppl["bits_per_byte_after"] = after.bits_per_byte;
    SQ_RETURN_IF_ERROR(Emit("eval", "eval", 2, 2, absl::StrFormat("perplexity after: %.4f", after.perplexity),
                            {{"perplexity_after", after.perplexity}}));
    result.timings_s["eval_after"] = Seconds(t);
  }
  report["perplexity"] = ppl;  // null without eval text
  t = Clock::now();
  SQ_RETURN_IF_ERROR(Emit("eval", "eval", 0, 1, "evaluating the compressed model (tasks, agreement, latency)"));
  SQ_RETURN_IF_ERROR(evaluator.EvaluateCompressed(model_, report_tok, ppl_after ? &*ppl_after : nullptr));
  if (evaluator.wants_agreement() && eval_tok) {
    SQ_ASSIGN_OR_RETURN(Model dense, LoadCompressedModel(options_.model_path));
    SQ_RETURN_IF_ERROR(evaluator.EvaluateAgreement(dense, model_, *eval_tok, absl::StrJoin(eval_docs, "\n\n")));
  }
  evaluator.AddDeterministic(&report);
  result.timings_s["eval_compressed"] = Seconds(t);

  t = Clock::now();
  SQ_RETURN_IF_ERROR(Emit("save", "model", 0, 1, absl::StrCat("writing ", options_.output_dir)));
  SQ_RETURN_IF_ERROR(WriteArtifacts(report));
  SQ_RETURN_IF_ERROR(Emit("save", "model", 1, 1, "artifacts written"));
  result.timings_s["save"] = Seconds(t);
  SQ_RETURN_IF_ERROR(RemoveRunCheckpoint(work_dir_));
  SQ_ASSIGN_OR_RETURN(std::string written, ReadFileToString(options_.output_dir + "/report.json"));
  result.report = json::parse(written);
  evaluator.AddMeasured(&result.report, stage_seconds, Seconds(t_total), ProcessCpuSeconds() - cpu0, measured_device);
  if (result.resumed && result.report.contains("scores") && result.report["scores"].contains("hulk")) {
    // Seconds count only what this process ran: the part before the
    // checkpoint (another lease, maybe another worker) is not in them.
    result.report["scores"]["hulk"]["partial_after_resume"] = true;
  }
  result.output_dir = options_.output_dir;
  result.timings_s["total"] = Seconds(t_total);
  return result;
}

}  // namespace

bool IsStoppedWithCheckpoint(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted && absl::StartsWith(status.message(), kStoppedPrefix);
}

absl::StatusOr<Recipe> SplitStagesForCalibration(const Recipe& recipe, const ModifierRegistry& registry) {
  Recipe out = recipe;
  out.stages.clear();
  for (const RecipeStage& stage : recipe.stages) {
    SQ_ASSIGN_OR_RETURN(auto mods, BuildStageModifiers(stage, registry));
    RecipeStage part{stage.name, {}};
    int parts = 1;
    for (size_t i = 0; i < mods.size(); ++i) {
      part.modifiers.push_back(stage.modifiers[i]);
      bool later_calibrated = false;
      for (size_t j = i + 1; j < mods.size(); ++j) later_calibrated = later_calibrated || mods[j]->needs_calibration();
      if (mods[i]->ends_calibration_pass() && later_calibrated) {
        out.stages.push_back(std::move(part));
        part = RecipeStage{absl::StrCat(stage.name, ".", ++parts), {}};
      }
    }
    out.stages.push_back(std::move(part));
  }
  return out;
}

absl::StatusOr<RunResult> RunRecipe(const Recipe& recipe, const RunOptions& options, ProgressSink& progress,
                                    RunControl& control) {
  SQ_ASSIGN_OR_RETURN(const Recipe split,
                      SplitStagesForCalibration(
                          recipe, options.registry ? *options.registry : ModifierRegistry::Builtin()));
  Runner runner(split, options, progress, control);
  return runner.Run();
}

}  // namespace squeeze
