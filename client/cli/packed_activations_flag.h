// --packed-activations fp32|int8: the activation arithmetic of packed int4 /
// int8 layers (workers/methods/quant/packed_int_linear.h) for the offline
// commands that run a model (eval, generate, eval-tasks) and for the
// evaluation of the compressed model in a job (run, submit: report.json
// quality.evaluation.packed_activations).
#pragma once

#include "absl/status/statusor.h"
#include "client/cli/args.h"
#include "workers/engine/model/model.h"
#include "workers/methods/quant/packed_int_linear.h"

namespace squeeze::cli {

// Declares the option on p (default fp32).
void AddPackedActivationsOption(ArgParser& p);

// The parsed value; InvalidArgument naming --packed-activations otherwise.
absl::StatusOr<PackedActivations> GetPackedActivations(const ArgParser& p);

// Sets it on every packed layer of model; returns how many run it.
int64_t ApplyPackedActivations(Model& model, PackedActivations a);

}  // namespace squeeze::cli
