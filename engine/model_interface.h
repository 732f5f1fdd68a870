// What the trainer needs from a model. The engine knows nothing of GPT: models/ implements this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/tensor.h"

namespace gpt {

// One parameter tensor with its gradient and whether weight decay applies (2-D weight matrices
// only). trainable = false: the optimizer skips it and allocates no state for it (frozen).
struct ParamGroup {
  std::string name;
  Tensor param;
  Tensor grad;
  bool weight_decay = false;
  bool trainable = true;
};

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  virtual Backend& backend() = 0;
  // Sum of per-token losses over unmasked targets; targets may be null.
  virtual double forward(const int32_t* tokens, const int32_t* targets, int B, int T) = 0;
  // Forward, then backward with each token's loss scaled by dloss; gradients accumulate.
  virtual double forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T,
                                  float dloss) = 0;
  virtual void zero_grad() = 0;
  virtual std::vector<ParamGroup> parameters() = 0;
};

}  // namespace gpt
