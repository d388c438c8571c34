// DistillationModifier: recipe adapter for workers/methods/distill/distill.h.
// Fine-tunes the model as compressed by the earlier stages (masks and
// quantization grids kept) towards a teacher's logits on text files.
//   teacher          model path (HF directory or llama2.c .bin); default:
//                    the job's own input model (the uncompressed model)
//   dataset          text file or list of files; default: the job's
//                    calibration text
//   hidden_layers    student blocks whose outputs are matched to the
//                    teacher's (MSE, hidden_match.h; a projection is learned
//                    when widths differ); hidden_teacher_layers (default:
//                    proportional), hidden_weight 1
//   student_layers   teacher blocks the student keeps (a smaller student
//                    initialised from the teacher's layers, e.g. [0, 2, 4]);
//                    the others are removed when the stage starts
//                    (Modifier::LayersToRemove). Default: all.
//   separator        document separator in the files (default "")
//   max_bytes        bytes read per file (default 1000000)
//   loss             "forward_kl" (KD, default) | "reverse_kl" (MiniLLM) |
//                    "gkd" (generalized JSD) | "ce" (plain fine-tuning)
//   temperature 1, beta 0.5 (gkd: 0 = forward KL, 1 = reverse KL),
//   lmbda 0 (on-policy fraction), prompt_len 8
//   steps 100, batch_size 8, seq_len 64, lr 1e-3, min_lr 1e-4,
//   warmup_steps 10, weight_decay 0, grad_clip 1.0
//   quantized_as     "qat" (default) | "lora"; lora_rank 8, lora_alpha 16
//   train_norms true, train_embeddings false
//   targets / ignore the linears trained (others stay frozen); defaults
//                    [Linear] / [lm_head]
// The whole-model training runs once, when the runner reaches the last block
// (earlier blocks only register); every trained module is reported with the
// first / final loss (mean of the first / last 10 steps), and the stage's
// report gets "training": settings, loss_first / loss_final and loss_curve
// [{step, loss, lr}] (at most 200 points, each the mean loss of the
// loss_curve_every steps ending at `step`; engine/train/loss_curve.h).
#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/tokenizer/tokenizer.h"
#include "workers/engine/train/loss_curve.h"
#include "workers/methods/distill/distill.h"
#include "workers/methods/prune/magnitude.h"
#include "workers/runner/modifier_registry.h"

namespace squeeze {
namespace {

struct DistillArgs {
  std::string teacher;
  std::vector<std::string> dataset;
  std::string separator;
  int64_t max_bytes = 1000000;
  std::vector<int> student_layers;
  DistillOptions options;
};

// A list of non-negative integers (or one integer) at `key`.
absl::StatusOr<std::vector<int>> IntList(const ModifierArgs& args, const std::string& key) {
  if (!args.Has(key)) return std::vector<int>();
  const nlohmann::json& v = args.json().at(key);
  std::vector<int> out;
  if (v.is_number_integer()) {
    out.push_back(v.get<int>());
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number_integer()) return args.Error(absl::StrCat(key, "[", i, "]"), "expected an integer");
      out.push_back(v[i].get<int>());
    }
  } else {
    return args.Error(key, "expected a list of integers");
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] < 0) return args.Error(absl::StrCat(key, "[", i, "]"), "must be >= 0");
  }
  return out;
}

// A float option as the decimal the user wrote (0.002f would print as
// 0.0020000000949949026).
double Short(float v) { return std::stod(absl::StrFormat("%.7g", v)); }

// report.json stages[i].training: the run's settings and its loss curve
// (engine/train/loss_curve.h, at most 200 points); deterministic, no timings.
nlohmann::json TrainingJson(const train::TrainOptions& t, const std::vector<train::StepLog>& history, double first,
                            double last) {
  nlohmann::json curve = nlohmann::json::array();
  int64_t every = 1;
  for (const train::LossPoint& p : train::LossCurve(history, 200)) {
    curve.push_back({{"step", p.step}, {"loss", p.loss}, {"lr", Short(static_cast<float>(p.lr))}});
    every = std::max(every, p.steps_covered);
  }
  int64_t on_policy = 0;
  for (const train::StepLog& l : history) on_policy += l.on_policy ? 1 : 0;
  nlohmann::json j = {{"loss", train::LossKindName(t.loss)},
                      {"steps", static_cast<int64_t>(history.size())},
                      {"batch_size", t.batch},
                      {"seq_len", t.seq},
                      {"tokens_per_step", static_cast<int64_t>(t.batch) * t.seq * t.grad_accum},
                      {"lr", Short(t.lr)},
                      {"min_lr", Short(t.min_lr)},
                      {"warmup_steps", t.warmup_steps},
                      {"on_policy_steps", on_policy},
                      {"loss_first", first},
                      {"loss_final", last},
                      {"loss_curve_every", every},
                      {"loss_curve", std::move(curve)}};
  if (t.loss != train::LossKind::kCrossEntropy) {
    j["temperature"] = Short(t.temperature);
    if (t.loss == train::LossKind::kGeneralizedJsd) j["beta"] = Short(t.beta);
    j["lmbda"] = Short(t.lmbda);
  }
  return j;
}

class DistillationModifier final : public Modifier {
 public:
  DistillationModifier(TargetMatcher matcher, DistillArgs args) : matcher_(std::move(matcher)), args_(std::move(args)) {}
  std::string type() const override { return "DistillationModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    Model& student = *ctx.model;
    if (ctx.layer != static_cast<int>(student.blocks.size()) - 1) return absl::OkStatus();
    const std::string teacher_path = args_.teacher.empty() ? ctx.input_model_path : args_.teacher;
    if (teacher_path.empty()) {
      return absl::InvalidArgumentError("DistillationModifier.teacher: not given and the run has no input model path");
    }
    std::vector<std::string> dataset = args_.dataset;
    if (dataset.empty() && !ctx.calibration_text_path.empty()) dataset = {ctx.calibration_text_path};
    if (dataset.empty()) {
      return absl::InvalidArgumentError(
          "DistillationModifier.dataset: not given and the run has no calibration text (give --calib or dataset)");
    }
    SQ_ASSIGN_OR_RETURN(Model teacher, LoadModel(teacher_path));
    SQ_ASSIGN_OR_RETURN(std::string tok_path, FindTokenizerFor(teacher_path));
    SQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizer(tok_path));
    std::vector<train::TextSource> sources;
    for (const std::string& f : dataset) sources.push_back({f, 1.0, args_.max_bytes});
    SQ_ASSIGN_OR_RETURN(train::TokenDataset data,
                        train::LoadTextDataset(sources, *tok, args_.separator, args_.options.train.seq));
    DistillOptions o = args_.options;
    o.train.seed = ctx.seed;
    o.trainable = [this](const std::string& module) { return matcher_.Matches(module); };
    if (ctx.progress) {
      // At most ~50 events per run (each is a durable job event), plus the last step.
      const int64_t steps = o.train.steps, every = std::max<int64_t>(1, steps / 50);
      const double tokens_per_step = static_cast<double>(o.train.batch) * o.train.seq * o.train.grad_accum;
      o.on_step = [&ctx, steps, every, tokens_per_step](const train::StepLog& l) {
        if (l.step % every != 0 && l.step != steps) return;
        // ETA from the last step's throughput (seconds; events only, never
        // the artifact).
        const double eta_s = l.tokens_per_second > 0
                                 ? static_cast<double>(steps - l.step) * tokens_per_step / l.tokens_per_second
                                 : 0.0;
        std::map<std::string, double> m = {{"loss", l.loss},
                                           {"lr", l.lr},
                                           {"grad_norm", l.grad_norm},
                                           {"tokens_per_s", l.tokens_per_second},
                                           {"eta_s", eta_s}};
        if (l.hidden_loss != 0) m["hidden_loss"] = l.hidden_loss;
        ctx.progress("step", l.step, steps,
                     absl::StrFormat("distill step %d/%d: loss %.4f, lr %.3g, %.0f tokens/s, ETA %.0f s", l.step,
                                     steps, l.loss, l.lr, l.tokens_per_second, eta_s),
                     m);
      };
    }
    SQ_ASSIGN_OR_RETURN(DistillResult r, DistillInPlace(student, teacher, data, o, *ctx.pool));
    double first = 0, last = 0;
    const size_t k = std::min<size_t>(10, r.history.size());
    for (size_t i = 0; i < k; ++i) {
      first += r.history[i].loss / k;
      last += r.history[r.history.size() - 1 - i].loss / k;
    }
    if (ctx.stage_report != nullptr) (*ctx.stage_report)["training"] = TrainingJson(o.train, r.history, first, last);
    for (LinearSlot& s : student.AllLinears()) {
      if (!matcher_.Matches(s.name)) continue;
      ModuleReport rep;
      rep.module = s.name;
      rep.modifier = type();
      rep.kind = (*s.slot)->kind();
      const MatrixRM w = (*s.slot)->DenseWeight();
      rep.metrics["sparsity"] = static_cast<double>(CountZeros(w)) / static_cast<double>(w.size());
      rep.metrics["distill_loss_first"] = first;
      rep.metrics["distill_loss_final"] = last;
      rep.metrics["distill_steps"] = static_cast<double>(r.history.size());
      reports->push_back(std::move(rep));
    }
    return absl::OkStatus();
  }

  // A smaller student: the blocks not in student_layers go when the stage
  // starts; the kept ones start from the teacher's (= the input's) weights.
  absl::StatusOr<std::vector<int>> LayersToRemove(const Model& model, const std::vector<std::vector<int>>&,
                                                  ThreadPool&, nlohmann::json* details) override {
    if (args_.student_layers.empty()) return std::vector<int>();
    const int n = static_cast<int>(model.blocks.size());
    std::vector<bool> keep(n, false);
    for (size_t i = 0; i < args_.student_layers.size(); ++i) {
      const int l = args_.student_layers[i];
      if (l < 0 || l >= n) {
        return absl::InvalidArgumentError(absl::StrCat("DistillationModifier.student_layers[", i, "]: ", l,
                                                       " is outside the model's blocks [0, ", n, ")"));
      }
      keep[l] = true;
    }
    std::vector<int> remove;
    for (int l = 0; l < n; ++l) {
      if (!keep[l]) remove.push_back(l);
    }
    (*details)["student_layers"] = args_.student_layers;
    return remove;
  }

 private:
  TargetMatcher matcher_;
  DistillArgs args_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  DistillArgs a;
  train::TrainOptions& t = a.options.train;
  SQ_ASSIGN_OR_RETURN(a.teacher, args.GetString("teacher", ""));  // "" = the job's input model
  SQ_ASSIGN_OR_RETURN(a.dataset, args.GetStringList("dataset", {}));  // empty = the calibration text
  if (args.Has("dataset") && a.dataset.empty()) return args.Error("dataset", "is an empty list");
  SQ_ASSIGN_OR_RETURN(t.hidden_layers, IntList(args, "hidden_layers"));
  SQ_ASSIGN_OR_RETURN(t.hidden_teacher_layers, IntList(args, "hidden_teacher_layers"));
  SQ_ASSIGN_OR_RETURN(double hidden_weight, args.GetNumber("hidden_weight", 1.0));
  if (!(hidden_weight >= 0)) return args.Error("hidden_weight", "must be >= 0");
  t.hidden_weight = static_cast<float>(hidden_weight);
  if (!t.hidden_teacher_layers.empty() && t.hidden_teacher_layers.size() != t.hidden_layers.size()) {
    return args.Error("hidden_teacher_layers", "needs one entry per hidden_layers entry");
  }
  SQ_ASSIGN_OR_RETURN(a.student_layers, IntList(args, "student_layers"));
  if (args.Has("student_layers") && a.student_layers.empty()) return args.Error("student_layers", "is an empty list");
  SQ_ASSIGN_OR_RETURN(a.separator, args.GetString("separator", ""));
  SQ_ASSIGN_OR_RETURN(a.max_bytes, args.GetInt("max_bytes", 1000000));
  if (a.max_bytes <= 0) return args.Error("max_bytes", "must be > 0");
  SQ_ASSIGN_OR_RETURN(std::string loss, args.GetString("loss", "forward_kl"));
  auto kind = train::ParseLossKind(loss);
  if (!kind.ok()) return args.Error("loss", std::string(kind.status().message()));
  t.loss = *kind;
  SQ_ASSIGN_OR_RETURN(double temperature, args.GetNumber("temperature", 1.0));
  SQ_ASSIGN_OR_RETURN(double beta, args.GetNumber("beta", 0.5));
  SQ_ASSIGN_OR_RETURN(double lmbda, args.GetNumber("lmbda", 0.0));
  SQ_ASSIGN_OR_RETURN(int64_t prompt_len, args.GetInt("prompt_len", 8));
  SQ_ASSIGN_OR_RETURN(t.steps, args.GetInt("steps", 100));
  SQ_ASSIGN_OR_RETURN(int64_t batch, args.GetInt("batch_size", 8));
  SQ_ASSIGN_OR_RETURN(int64_t seq, args.GetInt("seq_len", 64));
  SQ_ASSIGN_OR_RETURN(double lr, args.GetNumber("lr", 1e-3));
  SQ_ASSIGN_OR_RETURN(double min_lr, args.GetNumber("min_lr", 1e-4));
  SQ_ASSIGN_OR_RETURN(t.warmup_steps, args.GetInt("warmup_steps", 10));
  SQ_ASSIGN_OR_RETURN(double wd, args.GetNumber("weight_decay", 0.0));
  SQ_ASSIGN_OR_RETURN(t.grad_clip, args.GetNumber("grad_clip", 1.0));
  SQ_ASSIGN_OR_RETURN(a.options.quantized_as, args.GetString("quantized_as", "qat"));
  SQ_ASSIGN_OR_RETURN(int64_t lora_rank, args.GetInt("lora_rank", 8));
  SQ_ASSIGN_OR_RETURN(double lora_alpha, args.GetNumber("lora_alpha", 16.0));
  SQ_ASSIGN_OR_RETURN(a.options.train_norms, args.GetBool("train_norms", true));
  SQ_ASSIGN_OR_RETURN(a.options.train_embeddings, args.GetBool("train_embeddings", false));
  if (!(temperature > 0)) return args.Error("temperature", "must be > 0");
  if (!(beta >= 0 && beta <= 1)) return args.Error("beta", "must be in [0, 1]");
  if (!(lmbda >= 0 && lmbda <= 1)) return args.Error("lmbda", "must be in [0, 1]");
  if (lmbda > 0 && t.loss == train::LossKind::kCrossEntropy) return args.Error("lmbda", "needs a teacher loss, not ce");
  if (t.steps <= 0) return args.Error("steps", "must be > 0");
  if (batch <= 0) return args.Error("batch_size", "must be > 0");
  if (seq <= 1) return args.Error("seq_len", "must be > 1");
  if (lmbda > 0 && (prompt_len < 1 || prompt_len >= seq)) return args.Error("prompt_len", "must be in [1, seq_len)");
  if (!(lr > 0)) return args.Error("lr", "must be > 0");
  if (min_lr < 0 || min_lr > lr) return args.Error("min_lr", "must be in [0, lr]");
  if (t.warmup_steps < 0) return args.Error("warmup_steps", "must be >= 0");
  if (wd < 0) return args.Error("weight_decay", "must be >= 0");
  if (a.options.quantized_as != "qat" && a.options.quantized_as != "lora") {
    return args.Error("quantized_as", "must be \"qat\" or \"lora\"");
  }
  if (lora_rank <= 0) return args.Error("lora_rank", "must be > 0");
  t.temperature = static_cast<float>(temperature);
  t.beta = static_cast<float>(beta);
  t.lmbda = static_cast<float>(lmbda);
  t.prompt_len = static_cast<int>(prompt_len);
  t.batch = static_cast<int>(batch);
  t.seq = static_cast<int>(seq);
  t.lr = static_cast<float>(lr);
  t.min_lr = static_cast<float>(min_lr);
  t.adamw.weight_decay = static_cast<float>(wd);
  a.options.lora_rank = static_cast<int>(lora_rank);
  a.options.lora_alpha = static_cast<float>(lora_alpha);
  SQ_ASSIGN_OR_RETURN(TargetMatcher matcher, args.GetMatcher());
  return std::unique_ptr<Modifier>(new DistillationModifier(std::move(matcher), std::move(a)));
}

}  // namespace

void RegisterDistillationModifier(ModifierRegistry& registry) {
  registry.Register({"DistillationModifier",
                     "fine-tune the compressed model towards a teacher (KD, MiniLLM, GKD), masks and grids kept",
                     {{"teacher", ArgType::kString, "teacher model path (default: the job's input model)"},
                      {"dataset", ArgType::kStringList, "text files (default: the calibration text)"},
                      {"hidden_layers", ArgType::kAny, "student blocks whose outputs match the teacher's (MSE)"},
                      {"hidden_teacher_layers", ArgType::kAny, "teacher block per hidden_layers entry"},
                      {"hidden_weight", ArgType::kNumber, "weight of the hidden-state MSE"},
                      {"student_layers", ArgType::kAny, "teacher blocks a smaller student keeps"},
                      {"separator", ArgType::kString, "document separator"},
                      {"max_bytes", ArgType::kInt, "bytes read per file"},
                      {"loss", ArgType::kString, "forward_kl | reverse_kl | gkd | ce"},
                      {"temperature", ArgType::kNumber, "softmax temperature (T^2-scaled loss)"},
                      {"beta", ArgType::kNumber, "gkd: 0 = forward KL, 1 = reverse KL"},
                      {"lmbda", ArgType::kNumber, "on-policy (student-generated) fraction"},
                      {"prompt_len", ArgType::kInt, "on-policy prompt tokens"},
                      {"steps", ArgType::kInt, "optimizer steps"},
                      {"batch_size", ArgType::kInt, "sequences per step"},
                      {"seq_len", ArgType::kInt, "tokens per sequence"},
                      {"lr", ArgType::kNumber, "peak learning rate"},
                      {"min_lr", ArgType::kNumber, "final learning rate (cosine)"},
                      {"warmup_steps", ArgType::kInt, "linear warmup steps"},
                      {"weight_decay", ArgType::kNumber, "AdamW decoupled weight decay"},
                      {"grad_clip", ArgType::kNumber, "global gradient norm clip (<= 0: off)"},
                      {"quantized_as", ArgType::kString, "qat | lora for packed layers"},
                      {"lora_rank", ArgType::kInt, "LoRA rank"},
                      {"lora_alpha", ArgType::kNumber, "LoRA alpha"},
                      {"train_norms", ArgType::kBool, "train RMSNorm weights"},
                      {"train_embeddings", ArgType::kBool, "train the embedding"},
                      {"targets", ArgType::kStringList, "modules trained"},
                      {"ignore", ArgType::kStringList, "modules kept frozen"}},
                     Create});
}

}  // namespace squeeze
