// Random Llama-family models for tests and benchmarks (no checkpoint needed).
//
// Weights are drawn from N(0, 1/in_features) (so activations stay O(1)),
// norms from 1 + N(0, 0.1^2), with a std::mt19937_64 seeded by `seed`:
// the same config and seed give the same model on every machine that uses
// libstdc++'s normal_distribution.
#pragma once

#include <cstdint>

#include "workers/engine/model/model.h"

namespace squeeze {

// All linears are fp32 DenseLinear. Tied head when config.tie_word_embeddings,
// else an untied lm_head. q/k/v biases when config.attention_bias.
Model MakeRandomModel(const ModelConfig& config, uint64_t seed);

}  // namespace squeeze
