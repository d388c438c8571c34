#include "workers/engine/eval/loaded_model.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/core/status_macros.h"
#include "workers/engine/formats/gguf_model.h"
#include "workers/engine/formats/model_io.h"
#include "workers/engine/model/forward.h"

namespace squeeze {

absl::StatusOr<LoadedModel> LoadModelAndTokenizer(const std::string& model_path,
                                                  const std::string& tokenizer_path, const LoadModelOptions& options) {
  LoadedModel out;
  if (absl::EndsWith(model_path, ".gguf")) {
    // GGUF carries its tokenizer (tokenizer.ggml.*); --tokenizer overrides it.
    GgufImportOptions gguf;
    gguf.keep_ggml_blocks = options.gguf_keep_blocks;
    SQ_ASSIGN_OR_RETURN(GgufModel g, LoadGgufModel(model_path, gguf));
    out.model = std::move(g.model);
    out.tokenizer = std::move(g.tokenizer);
    out.tokenizer_path = model_path;
    if (absl::Status s = ValidateModel(out.model); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(model_path, ": ", s.message()));
    }
    if (!tokenizer_path.empty()) {
      out.tokenizer_path = tokenizer_path;
      SQ_ASSIGN_OR_RETURN(out.tokenizer, LoadTokenizer(tokenizer_path));
    }
    if (out.tokenizer->vocab_size() > out.model.config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(out.tokenizer_path, ": tokenizer has ", out.tokenizer->vocab_size(),
                                                     " tokens, more than the model's vocabulary of ",
                                                     out.model.config.vocab_size));
    }
    return out;
  }
  SQ_ASSIGN_OR_RETURN(out.model, LoadModel(model_path));
  if (absl::Status s = ValidateModel(out.model); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": ", s.message()));
  }
  out.tokenizer_path = tokenizer_path;
  if (out.tokenizer_path.empty()) {
    SQ_ASSIGN_OR_RETURN(out.tokenizer_path, FindTokenizerFor(model_path));
  }
  SQ_ASSIGN_OR_RETURN(out.tokenizer, LoadTokenizer(out.tokenizer_path));
  if (out.tokenizer->vocab_size() > out.model.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(out.tokenizer_path, ": tokenizer has ", out.tokenizer->vocab_size(),
                                                   " tokens, more than the model's vocabulary of ",
                                                   out.model.config.vocab_size));
  }
  return out;
}

}  // namespace squeeze
