// DistillationModifier: recipe adapter for workers/methods/distill/distill.h.
// Fine-tunes the model as compressed by the earlier stages (masks and
// quantization grids kept) towards a teacher's logits on text files.
//   teacher          model path (HF directory or llama2.c .bin), required;
//                    typically the uncompressed model of the job
//   dataset          text file or list of files, required
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
// first / final loss (mean of the first / last 10 steps).
#include <memory>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/tokenizer/tokenizer.h"
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
  DistillOptions options;
};

class DistillationModifier final : public Modifier {
 public:
  DistillationModifier(TargetMatcher matcher, DistillArgs args) : matcher_(std::move(matcher)), args_(std::move(args)) {}
  std::string type() const override { return "DistillationModifier"; }
  const TargetMatcher& matcher() const override { return matcher_; }

  absl::Status ApplyToLayer(LayerContext& ctx, std::vector<ModuleReport>* reports) override {
    Model& student = *ctx.model;
    if (ctx.layer != static_cast<int>(student.blocks.size()) - 1) return absl::OkStatus();
    SQ_ASSIGN_OR_RETURN(Model teacher, LoadModel(args_.teacher));
    SQ_ASSIGN_OR_RETURN(std::string tok_path, FindTokenizerFor(args_.teacher));
    SQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizer(tok_path));
    std::vector<train::TextSource> sources;
    for (const std::string& f : args_.dataset) sources.push_back({f, 1.0, args_.max_bytes});
    SQ_ASSIGN_OR_RETURN(train::TokenDataset data,
                        train::LoadTextDataset(sources, *tok, args_.separator, args_.options.train.seq));
    DistillOptions o = args_.options;
    o.train.seed = ctx.seed;
    o.trainable = [this](const std::string& module) { return matcher_.Matches(module); };
    SQ_ASSIGN_OR_RETURN(DistillResult r, DistillInPlace(student, teacher, data, o, *ctx.pool));
    double first = 0, last = 0;
    const size_t k = std::min<size_t>(10, r.history.size());
    for (size_t i = 0; i < k; ++i) {
      first += r.history[i].loss / k;
      last += r.history[r.history.size() - 1 - i].loss / k;
    }
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

 private:
  TargetMatcher matcher_;
  DistillArgs args_;
};

absl::StatusOr<std::unique_ptr<Modifier>> Create(const ModifierArgs& args) {
  DistillArgs a;
  train::TrainOptions& t = a.options.train;
  SQ_ASSIGN_OR_RETURN(a.teacher, args.GetString("teacher", ""));
  if (a.teacher.empty()) return args.Error("teacher", "is required (a model path)");
  SQ_ASSIGN_OR_RETURN(a.dataset, args.GetStringList("dataset", {}));
  if (a.dataset.empty()) return args.Error("dataset", "is required (text files)");
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
                     {{"teacher", ArgType::kString, "teacher model path"},
                      {"dataset", ArgType::kStringList, "text files"},
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
