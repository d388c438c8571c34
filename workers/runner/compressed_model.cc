#include "workers/runner/compressed_model.h"

#include "workers/engine/formats/model_io.h"
#include "workers/methods/stored_linear.h"

namespace squeeze {

absl::StatusOr<Model> LoadCompressedModel(const std::string& path) {
  RegisterMethodLinearLoaders();
  return LoadModel(path);
}

}  // namespace squeeze
