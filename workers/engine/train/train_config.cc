#include "workers/engine/train/train_config.h"

#include <set>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "workers/engine/core/file_util.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/eval/loaded_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/tokenizer/llama2c_byte_vocab.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace squeeze::train {
namespace {

absl::Status Bad(const std::string& key, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("train config: ", key, ": ", why));
}

template <typename T>
absl::Status Get(const YAML::Node& n, const std::string& key, const std::string& path, T* out) {
  if (!n[key]) return absl::OkStatus();
  try {
    *out = n[key].as<T>();
  } catch (const YAML::Exception& e) {
    return Bad(path + key, "cannot be read as the expected type");
  }
  return absl::OkStatus();
}

absl::Status CheckKeys(const YAML::Node& n, const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    if (!allowed.count(k)) return Bad(where + k, "unknown key");
  }
  return absl::OkStatus();
}

}  // namespace

std::string ByteLevelTokenizerBin() { return Llama2cByteVocabBin(); }

absl::StatusOr<TrainConfig> ParseTrainConfig(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Bad("(file)", absl::StrCat("not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) return Bad("(file)", "must be a mapping");
  SQ_RETURN_IF_ERROR(CheckKeys(root,
                               {"model", "init_from", "teacher", "loss", "temperature", "beta", "lmbda", "prompt_len",
                                "tokenizer", "data", "separator", "steps", "batch_size", "grad_accum", "seq_len", "lr",
                                "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip",
                                "activation_checkpointing", "seed", "threads", "out_dir", "checkpoint_every"},
                               ""));
  TrainConfig c;
  TrainOptions& o = c.options;
  SQ_RETURN_IF_ERROR(Get(root, "init_from", "", &c.init_from));
  SQ_RETURN_IF_ERROR(Get(root, "teacher", "", &c.teacher));
  SQ_RETURN_IF_ERROR(Get(root, "tokenizer", "", &c.tokenizer));
  SQ_RETURN_IF_ERROR(Get(root, "separator", "", &c.separator));
  SQ_RETURN_IF_ERROR(Get(root, "out_dir", "", &c.out_dir));
  SQ_RETURN_IF_ERROR(Get(root, "threads", "", &c.threads));
  std::string loss = "ce";
  SQ_RETURN_IF_ERROR(Get(root, "loss", "", &loss));
  auto kind = ParseLossKind(loss);
  if (!kind.ok()) return Bad("loss", std::string(kind.status().message()));
  o.loss = *kind;
  SQ_RETURN_IF_ERROR(Get(root, "temperature", "", &o.temperature));
  SQ_RETURN_IF_ERROR(Get(root, "beta", "", &o.beta));
  SQ_RETURN_IF_ERROR(Get(root, "lmbda", "", &o.lmbda));
  SQ_RETURN_IF_ERROR(Get(root, "prompt_len", "", &o.prompt_len));
  SQ_RETURN_IF_ERROR(Get(root, "steps", "", &o.steps));
  SQ_RETURN_IF_ERROR(Get(root, "batch_size", "", &o.batch));
  SQ_RETURN_IF_ERROR(Get(root, "grad_accum", "", &o.grad_accum));
  SQ_RETURN_IF_ERROR(Get(root, "seq_len", "", &o.seq));
  SQ_RETURN_IF_ERROR(Get(root, "lr", "", &o.lr));
  SQ_RETURN_IF_ERROR(Get(root, "min_lr", "", &o.min_lr));
  SQ_RETURN_IF_ERROR(Get(root, "warmup_steps", "", &o.warmup_steps));
  SQ_RETURN_IF_ERROR(Get(root, "weight_decay", "", &o.adamw.weight_decay));
  SQ_RETURN_IF_ERROR(Get(root, "beta1", "", &o.adamw.beta1));
  SQ_RETURN_IF_ERROR(Get(root, "beta2", "", &o.adamw.beta2));
  SQ_RETURN_IF_ERROR(Get(root, "grad_clip", "", &o.grad_clip));
  SQ_RETURN_IF_ERROR(Get(root, "activation_checkpointing", "", &o.activation_checkpointing));
  SQ_RETURN_IF_ERROR(Get(root, "seed", "", &o.seed));
  SQ_RETURN_IF_ERROR(Get(root, "checkpoint_every", "", &o.checkpoint_every));
  if (c.out_dir.empty()) return Bad("out_dir", "is required");
  if (o.checkpoint_every > 0) o.checkpoint_dir = c.out_dir + "/checkpoints";
  if (root["model"]) {
    const YAML::Node m = root["model"];
    if (!m.IsMap()) return Bad("model", "must be a mapping");
    SQ_RETURN_IF_ERROR(CheckKeys(m, {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                     "vocab_size", "max_seq_len", "tie_word_embeddings", "rope_theta", "norm_eps"},
                                 "model."));
    ModelConfig mc;
    SQ_RETURN_IF_ERROR(Get(m, "dim", "model.", &mc.dim));
    SQ_RETURN_IF_ERROR(Get(m, "hidden_dim", "model.", &mc.hidden_dim));
    SQ_RETURN_IF_ERROR(Get(m, "n_layers", "model.", &mc.n_layers));
    SQ_RETURN_IF_ERROR(Get(m, "n_heads", "model.", &mc.n_heads));
    mc.n_kv_heads = mc.n_heads;
    SQ_RETURN_IF_ERROR(Get(m, "n_kv_heads", "model.", &mc.n_kv_heads));
    mc.head_dim = mc.n_heads > 0 ? mc.dim / mc.n_heads : 0;
    SQ_RETURN_IF_ERROR(Get(m, "head_dim", "model.", &mc.head_dim));
    SQ_RETURN_IF_ERROR(Get(m, "vocab_size", "model.", &mc.vocab_size));
    mc.max_seq_len = o.seq;
    SQ_RETURN_IF_ERROR(Get(m, "max_seq_len", "model.", &mc.max_seq_len));
    mc.tie_word_embeddings = true;
    SQ_RETURN_IF_ERROR(Get(m, "tie_word_embeddings", "model.", &mc.tie_word_embeddings));
    SQ_RETURN_IF_ERROR(Get(m, "rope_theta", "model.", &mc.rope_theta));
    SQ_RETURN_IF_ERROR(Get(m, "norm_eps", "model.", &mc.norm_eps));
    for (auto [name, v] : {std::pair{"dim", mc.dim}, {"hidden_dim", mc.hidden_dim}, {"n_layers", mc.n_layers},
                           {"n_heads", mc.n_heads}, {"n_kv_heads", mc.n_kv_heads}, {"head_dim", mc.head_dim}}) {
      if (v <= 0) return Bad(std::string("model.") + name, "must be > 0");
    }
    if (mc.head_dim % 2 != 0) return Bad("model.head_dim", "must be even (RoPE)");
    if (mc.n_heads % mc.n_kv_heads != 0) return Bad("model.n_kv_heads", "must divide n_heads");
    c.model = mc;
  }
  if (c.model.has_value() == !c.init_from.empty()) return Bad("model", "give exactly one of model and init_from");
  if (!root["data"]) return Bad("data", "is required");
  const YAML::Node d = root["data"];
  if (!d.IsSequence() || d.size() == 0) return Bad("data", "must be a non-empty list of files");
  for (size_t i = 0; i < d.size(); ++i) {
    TextSource s;
    const std::string where = absl::StrCat("data[", i, "]");
    if (d[i].IsScalar()) {
      s.path = d[i].as<std::string>();
    } else if (d[i].IsMap()) {
      SQ_RETURN_IF_ERROR(CheckKeys(d[i], {"path", "weight", "max_bytes"}, where + "."));
      SQ_RETURN_IF_ERROR(Get(d[i], "path", where + ".", &s.path));
      SQ_RETURN_IF_ERROR(Get(d[i], "weight", where + ".", &s.weight));
      SQ_RETURN_IF_ERROR(Get(d[i], "max_bytes", where + ".", &s.max_bytes));
    } else {
      return Bad(where, "must be a path or {path, weight, max_bytes}");
    }
    if (s.path.empty()) return Bad(where + ".path", "is required");
    if (!(s.weight > 0)) return Bad(where + ".weight", "must be > 0");
    c.data.push_back(s);
  }
  return c;
}

absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path) {
  SQ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto c = ParseTrainConfig(text);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  return c;
}

absl::StatusOr<TrainRunResult> RunTraining(const TrainConfig& config,
                                           const std::function<void(const StepLog&)>& on_step,
                                           const std::atomic<bool>* stop) {
  // Tokenizer.
  std::string tok_bytes;
  if (config.tokenizer == "byte") {
    tok_bytes = ByteLevelTokenizerBin();
  } else {
    std::string path = config.tokenizer;
    if (path.empty()) {
      const std::string beside = !config.init_from.empty() ? config.init_from : config.teacher;
      if (beside.empty()) return Bad("tokenizer", "is required for a fresh model (a path or \"byte\")");
      SQ_ASSIGN_OR_RETURN(path, FindTokenizerFor(beside));
    }
    SQ_ASSIGN_OR_RETURN(tok_bytes, ReadFileToString(path));
  }
  SQ_RETURN_IF_ERROR(MakeDirs(config.out_dir + "/model"));
  const bool json_tokenizer = !tok_bytes.empty() && tok_bytes[0] == '{';
  const std::string tok_path = config.out_dir + "/model/" + (json_tokenizer ? "tokenizer.json" : "tokenizer.bin");
  SQ_RETURN_IF_ERROR(WriteFileAtomically(tok_path, tok_bytes));
  SQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, LoadTokenizer(tok_path));

  // Student.
  TrainModel student;
  if (config.model) {
    ModelConfig mc = *config.model;
    if (mc.vocab_size == 0) mc.vocab_size = tok->vocab_size();
    if (mc.vocab_size < tok->vocab_size()) {
      return Bad("model.vocab_size", absl::StrCat(mc.vocab_size, " is smaller than the tokenizer's ", tok->vocab_size()));
    }
    if (tok->bos_id() >= 0) mc.bos_token_id = tok->bos_id();
    if (tok->eos_id() >= 0) mc.eos_token_id = tok->eos_id();
    SQ_RETURN_IF_ERROR(mc.Validate());
    student = InitTrainModel(mc, config.options.seed);
  } else {
    SQ_ASSIGN_OR_RETURN(Model m, LoadModel(config.init_from));
    SQ_ASSIGN_OR_RETURN(student, FromModel(m, DenseConverter(true)));
  }
  std::optional<Model> teacher;
  if (!config.teacher.empty()) {
    SQ_ASSIGN_OR_RETURN(Model t, LoadModel(config.teacher));
    teacher = std::move(t);
  }
  if (config.options.loss != LossKind::kCrossEntropy && !teacher) {
    return Bad("teacher", absl::StrCat("loss ", LossKindName(config.options.loss), " needs a teacher"));
  }
  SQ_ASSIGN_OR_RETURN(TokenDataset data,
                      LoadTextDataset(config.data, *tok, config.separator, config.options.seq));
  std::unique_ptr<ThreadPool> own_pool;
  ThreadPool* pool = &ThreadPool::Default();
  if (config.threads > 0) {
    own_pool = std::make_unique<ThreadPool>(config.threads);
    pool = own_pool.get();
  }
  SQ_ASSIGN_OR_RETURN(auto trainer,
                      Trainer::Create(&student, teacher ? &*teacher : nullptr, &data, config.options, pool));
  TrainRunResult result;
  SQ_ASSIGN_OR_RETURN(result.resumed, trainer->Resume());
  SQ_RETURN_IF_ERROR(trainer->Run(on_step, stop));
  result.steps_done = trainer->step();
  const auto& h = trainer->history();
  const size_t k = std::min<size_t>(10, h.size());
  for (size_t i = 0; i < k; ++i) {
    result.first_loss += h[i].loss / k;
    result.final_loss += h[h.size() - 1 - i].loss / k;
  }
  result.model_dir = config.out_dir + "/model";
  SQ_RETURN_IF_ERROR(SaveModel(student.ToModel(), result.model_dir));
  nlohmann::json log;
  log["steps"] = result.steps_done;
  log["loss"] = LossKindName(config.options.loss);
  log["first_loss"] = result.first_loss;
  log["final_loss"] = result.final_loss;
  nlohmann::json curve = nlohmann::json::array();
  for (const StepLog& l : h) curve.push_back({{"step", l.step}, {"loss", l.loss}, {"lr", l.lr}, {"grad_norm", l.grad_norm}});
  log["loss_curve"] = curve;
  SQ_RETURN_IF_ERROR(WriteFileAtomically(config.out_dir + "/train_log.json", log.dump(1)));
  return result;
}

}  // namespace squeeze::train
