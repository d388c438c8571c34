#include "workers/engine/train/trainer.h"

#include "workers/engine/train/hidden_match.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/eval/generate.h"
#include "workers/engine/formats/safetensors.h"
#include "workers/engine/model/forward.h"
#include "workers/engine/model/kv_cache.h"

namespace squeeze::train {
namespace {

TensorView ViewOf(const std::vector<float>& v, const std::vector<int64_t>& shape) {
  TensorView t;
  t.dtype = DType::kF32;
  t.shape = shape;
  t.data = v.data();
  t.nbytes = v.size() * sizeof(float);
  return t;
}

absl::Status CopyTensor(const SafetensorsFile& f, const std::string& name, std::vector<float>& dst) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": checkpoint has no tensor ", name));
  }
  if (it->second.dtype != DType::kF32 || it->second.numel() != static_cast<int64_t>(dst.size())) {
    return absl::InvalidArgumentError(absl::StrCat(f.path, ": tensor ", name, " has shape ",
                                                   ShapeString(it->second.shape), ", expected ", dst.size(),
                                                   " F32 values"));
  }
  std::memcpy(dst.data(), it->second.data, dst.size() * sizeof(float));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(TrainModel* student, const Model* teacher,
                                                         const TokenDataset* data, const TrainOptions& o,
                                                         ThreadPool* pool) {
  auto bad = [](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("training option ", field, ": ", why));
  };
  if (o.steps <= 0) return bad("steps", "must be > 0");
  if (o.batch <= 0) return bad("batch_size", "must be > 0");
  if (o.seq <= 1) return bad("seq_len", "must be > 1");
  if (student->config.max_seq_len > 0 && o.seq > student->config.max_seq_len) {
    return bad("seq_len", absl::StrCat(o.seq, " exceeds the model's max_seq_len ", student->config.max_seq_len));
  }
  if (o.grad_accum <= 0) return bad("grad_accum", "must be > 0");
  if (!(o.lr > 0)) return bad("lr", "must be > 0");
  if (o.min_lr < 0 || o.min_lr > o.lr) return bad("min_lr", "must be in [0, lr]");
  if (o.warmup_steps < 0) return bad("warmup_steps", "must be >= 0");
  if (!(o.temperature > 0)) return bad("temperature", "must be > 0");
  if (!(o.beta >= 0 && o.beta <= 1)) return bad("beta", "must be in [0, 1]");
  if (!(o.lmbda >= 0 && o.lmbda <= 1)) return bad("lmbda", "must be in [0, 1]");
  if (o.lmbda > 0 && (o.prompt_len < 1 || o.prompt_len >= o.seq)) return bad("prompt_len", "must be in [1, seq_len)");
  if (o.checkpoint_every < 0) return bad("checkpoint_every", "must be >= 0");
  if (o.checkpoint_every > 0 && o.checkpoint_dir.empty()) return bad("checkpoint_dir", "needed with checkpoint_every");
  if (o.loss != LossKind::kCrossEntropy && teacher == nullptr) return bad("loss", "a distillation loss needs a teacher");
  if (o.lmbda > 0 && o.loss == LossKind::kCrossEntropy) return bad("lmbda", "on-policy data needs a teacher loss");
  if (teacher != nullptr) {
    SQ_RETURN_IF_ERROR(ValidateModel(*teacher));
    if (teacher->config.vocab_size != student->config.vocab_size) {
      return bad("teacher", absl::StrCat("vocabulary ", teacher->config.vocab_size, " differs from the student's ",
                                         student->config.vocab_size));
    }
  }
  if (!o.hidden_layers.empty()) {
    if (teacher == nullptr) return bad("hidden_layers", "hidden-state matching needs a teacher");
    if (!(o.hidden_weight >= 0)) return bad("hidden_weight", "must be >= 0");
    if (!o.hidden_teacher_layers.empty() && o.hidden_teacher_layers.size() != o.hidden_layers.size()) {
      return bad("hidden_teacher_layers", "must have one entry per hidden_layers entry (or none)");
    }
    const int ns = static_cast<int>(student->blocks.size()), nt = static_cast<int>(teacher->blocks.size());
    for (size_t k = 0; k < o.hidden_layers.size(); ++k) {
      if (o.hidden_layers[k] < 0 || o.hidden_layers[k] >= ns) {
        return bad(absl::StrCat("hidden_layers[", k, "]"),
                   absl::StrCat(o.hidden_layers[k], " is outside the student's blocks [0, ", ns, ")"));
      }
      if (!o.hidden_teacher_layers.empty() &&
          (o.hidden_teacher_layers[k] < 0 || o.hidden_teacher_layers[k] >= nt)) {
        return bad(absl::StrCat("hidden_teacher_layers[", k, "]"),
                   absl::StrCat(o.hidden_teacher_layers[k], " is outside the teacher's blocks [0, ", nt, ")"));
      }
    }
  }
  return std::unique_ptr<Trainer>(new Trainer(student, teacher, data, o, pool));
}

Trainer::Trainer(TrainModel* student, const Model* teacher, const TokenDataset* data, const TrainOptions& options,
                 ThreadPool* pool)
    : student_(student), teacher_(teacher), data_(data), options_(options), pool_(pool),
      params_(student->Params()), adamw_(options.adamw), rng_(options.seed) {
  for (size_t k = 0; k < options_.hidden_layers.size(); ++k) {
    const int l = options_.hidden_layers[k];
    teacher_layers_.push_back(options_.hidden_teacher_layers.empty()
                                  ? DefaultTeacherLayer(l, static_cast<int>(student->blocks.size()),
                                                        static_cast<int>(teacher->blocks.size()))
                                  : options_.hidden_teacher_layers[k]);
    const int ds = student->config.dim, dt = teacher->config.dim;
    if (ds == dt) {
      projs_.push_back(nullptr);
      continue;
    }
    auto p = std::make_unique<Param>();
    std::vector<float> init(static_cast<size_t>(dt) * ds, 0.0f);
    for (int i = 0; i < std::min(ds, dt); ++i) init[static_cast<size_t>(i) * ds + i] = 1.0f;
    p->Init({dt, ds}, std::move(init), /*weight_decay=*/false);
    params_.push_back({absl::StrCat("hidden_proj.", k, ".weight"), p.get()});
    projs_.push_back(std::move(p));
  }
  adamw_.EnsureState(params_);
}

absl::Status Trainer::OnPolicyInputs(Batch& b) {
  // The student samples continuations of each row's first prompt_len tokens.
  const Model model = student_->ToModel();
  const int vocab = model.config.vocab_size;
  for (int r = 0; r < b.batch; ++r) {
    std::mt19937_64 gen(rng_());
    int* row = b.inputs.data() + int64_t{r} * b.seq;
    KVCache cache(model, b.seq);
    MatrixRM logits;
    SQ_RETURN_IF_ERROR(Forward(model, absl::MakeConstSpan(row, options_.prompt_len), 0, cache, logits, false, *pool_));
    for (int t = options_.prompt_len; t < b.seq; ++t) {
      row[t] = SampleToken(logits.data(), vocab, 1.0f, 1.0f, gen);
      if (t + 1 < b.seq) {
        SQ_RETURN_IF_ERROR(Forward(model, absl::MakeConstSpan(row + t, 1), t, cache, logits, false, *pool_));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Trainer::TeacherLogits(const Batch& b, MatrixRM& logits) {
  logits.resize(int64_t{b.batch} * b.seq, teacher_->config.vocab_size);
  for (int r = 0; r < b.batch; ++r) {
    KVCache cache(*teacher_, b.seq);
    MatrixRM l;
    SQ_RETURN_IF_ERROR(
        Forward(*teacher_, absl::MakeConstSpan(b.inputs.data() + int64_t{r} * b.seq, b.seq), 0, cache, l, true, *pool_));
    logits.middleRows(int64_t{r} * b.seq, b.seq) = l;
  }
  return absl::OkStatus();
}

absl::StatusOr<StepLog> Trainer::Step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepLog log;
  log.on_policy = options_.lmbda > 0 && static_cast<double>(rng_() >> 11) * 0x1.0p-53 < options_.lmbda;
  student_->ZeroGrad();
  for (auto& p : projs_) {
    if (p) p->ZeroGrad();
  }
  const double scale = 1.0 / options_.grad_accum;
  for (int micro = 0; micro < options_.grad_accum; ++micro) {
    Batch b = SampleBatch(*data_, options_.batch, options_.seq, rng_);
    if (log.on_policy) SQ_RETURN_IF_ERROR(OnPolicyInputs(b));
    ForwardState st;
    SQ_RETURN_IF_ERROR(TrainForward(*student_, b.inputs, b.batch, b.seq, options_.activation_checkpointing, &st, *pool_));
    MatrixRM dlogits;
    if (options_.loss == LossKind::kCrossEntropy) {
      log.loss += CrossEntropy(st.logits, b.targets, scale, &dlogits, *pool_);
    } else {
      MatrixRM teacher;
      SQ_RETURN_IF_ERROR(TeacherLogits(b, teacher));
      DistillLossOptions d{options_.loss, options_.temperature, options_.beta};
      SQ_ASSIGN_OR_RETURN(double l, DistillLoss(st.logits, teacher, d, {}, scale, &dlogits, *pool_));
      log.loss += l;
    }
    std::vector<MatrixRM> dhidden;
    if (!options_.hidden_layers.empty()) {
      SQ_ASSIGN_OR_RETURN(std::vector<MatrixRM> th,
                          TeacherHiddenStates(*teacher_, b.inputs, b.batch, b.seq, teacher_layers_, *pool_));
      dhidden.resize(student_->blocks.size());
      for (size_t k = 0; k < options_.hidden_layers.size(); ++k) {
        const int l = options_.hidden_layers[k];
        const MatrixRM& hs = BlockOutput(st, l);
        if (dhidden[l].size() == 0) dhidden[l] = MatrixRM::Zero(hs.rows(), hs.cols());
        MatrixRM proj, dproj;
        if (projs_[k]) {
          const Param& p = *projs_[k];
          proj = Eigen::Map<const MatrixRM>(p.value.data(), p.shape[0], p.shape[1]);
          dproj = MatrixRM::Zero(p.shape[0], p.shape[1]);
        }
        SQ_ASSIGN_OR_RETURN(double hl, HiddenStateMse(hs, th[k], projs_[k] ? &proj : nullptr,
                                                      options_.hidden_weight * scale, &dhidden[l],
                                                      projs_[k] ? &dproj : nullptr));
        if (projs_[k]) {
          Param& p = *projs_[k];
          for (int64_t i = 0; i < dproj.size(); ++i) p.grad[i] += dproj.data()[i];
        }
        log.loss += hl;
        log.hidden_loss += hl;
      }
    }
    SQ_RETURN_IF_ERROR(TrainBackward(*student_, st, dlogits, *pool_, dhidden));
  }
  log.grad_norm = ClipGradNorm(params_, options_.grad_clip);
  ScheduleOptions sched{options_.lr, options_.min_lr, options_.warmup_steps, options_.steps};
  log.lr = ScheduledLr(sched, step_);
  adamw_.Step(params_, static_cast<float>(log.lr));
  ++step_;
  log.step = step_;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log.tokens_per_second =
      secs > 0 ? static_cast<double>(options_.batch) * options_.seq * options_.grad_accum / secs : 0.0;
  history_.push_back(log);
  return log;
}

absl::Status Trainer::Run(const std::function<void(const StepLog&)>& on_step, const std::atomic<bool>* stop) {
  while (step_ < options_.steps) {
    if (stop != nullptr && stop->load()) {
      if (!options_.checkpoint_dir.empty()) SQ_RETURN_IF_ERROR(SaveCheckpoint());
      return absl::CancelledError(absl::StrCat("training stopped at step ", step_, " of ", options_.steps));
    }
    SQ_ASSIGN_OR_RETURN(StepLog log, Step());
    if (on_step) on_step(log);
    if (options_.checkpoint_every > 0 && (step_ % options_.checkpoint_every == 0 || step_ == options_.steps)) {
      SQ_RETURN_IF_ERROR(SaveCheckpoint());
    }
  }
  return absl::OkStatus();
}

absl::Status Trainer::SaveCheckpoint() {
  const std::string& dir = options_.checkpoint_dir;
  if (dir.empty()) return absl::FailedPreconditionError("SaveCheckpoint: no checkpoint_dir");
  SQ_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<SafetensorsEntry> entries;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Param& p = *params_[i].param;
    entries.push_back(StoredAs("param/" + params_[i].name, ViewOf(p.value, p.shape)));
    entries.push_back(StoredAs("adam_m/" + params_[i].name, ViewOf(adamw_.m()[i], p.shape)));
    entries.push_back(StoredAs("adam_v/" + params_[i].name, ViewOf(adamw_.v()[i], p.shape)));
  }
  const std::string file = absl::StrFormat("ckpt-%08d.safetensors", step_);
  SQ_RETURN_IF_ERROR(WriteSafetensors(dir + "/" + file, std::move(entries), {{"step", std::to_string(step_)}}));
  nlohmann::json j;
  j["format"] = "squeeze-train-v1";
  j["step"] = step_;
  j["adam_step"] = adamw_.step();
  j["file"] = file;
  std::ostringstream rng;
  rng << rng_;
  j["rng"] = rng.str();
  nlohmann::json hist = nlohmann::json::array();
  for (const StepLog& l : history_) {
    hist.push_back({{"step", l.step}, {"loss", l.loss}, {"lr", l.lr}, {"grad_norm", l.grad_norm},
                    {"on_policy", l.on_policy}});
  }
  j["loss_history"] = hist;
  SQ_RETURN_IF_ERROR(WriteFileAtomically(dir + "/latest.json", j.dump(1)));
  // Older tensor files are no longer referenced.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt-", 0) == 0 && name != file) std::filesystem::remove(e.path(), ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Trainer::Resume() {
  const std::string& dir = options_.checkpoint_dir;
  if (dir.empty()) return false;
  auto text = ReadFileToString(dir + "/latest.json");
  if (absl::IsNotFound(text.status())) return false;
  SQ_RETURN_IF_ERROR(text.status());
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "squeeze-train-v1" || !j.contains("step") ||
      !j.contains("file") || !j.contains("rng")) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/latest.json: not a squeeze-train-v1 checkpoint"));
  }
  SQ_ASSIGN_OR_RETURN(SafetensorsFile f, ReadSafetensors(dir + "/" + j["file"].get<std::string>()));
  for (size_t i = 0; i < params_.size(); ++i) {
    SQ_RETURN_IF_ERROR(CopyTensor(f, "param/" + params_[i].name, params_[i].param->value));
    SQ_RETURN_IF_ERROR(CopyTensor(f, "adam_m/" + params_[i].name, adamw_.m()[i]));
    SQ_RETURN_IF_ERROR(CopyTensor(f, "adam_v/" + params_[i].name, adamw_.v()[i]));
  }
  std::istringstream rng(j["rng"].get<std::string>());
  rng >> rng_;
  if (rng.fail()) return absl::InvalidArgumentError(absl::StrCat(dir, "/latest.json: bad rng state"));
  step_ = j["step"].get<int64_t>();
  adamw_.set_step(j.value("adam_step", step_));
  history_.clear();
  if (j.contains("loss_history")) {
    for (const auto& h : j["loss_history"]) {
      StepLog l;
      l.step = h.value("step", int64_t{0});
      l.loss = h.value("loss", 0.0);
      l.lr = h.value("lr", 0.0);
      l.grad_norm = h.value("grad_norm", 0.0);
      l.on_policy = h.value("on_policy", false);
      history_.push_back(l);
    }
  }
  return true;
}

}  // namespace squeeze::train
