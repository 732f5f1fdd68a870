// Fused softmax + cross-entropy over the vocabulary, with an ignore index.
//
// logits (N, Vp): only the first V columns are real; the padded columns [V, Vp) are excluded from
// the softmax as if they were -inf. targets (N) in [0, V), or kIgnoreIndex for masked positions.
//
//   losses[i]    = logsumexp_j<V(logits[i,j]) - logits[i, targets[i]]     (0 for an ignored row)
//   dlogits[i,j] = dloss · (softmax_j(logits[i,:V]) - [j == targets[i]])   for j < V
//   dlogits[i,j] = 0 for j >= V, and the whole row is 0 for an ignored target
//
// dloss is the scale of each token's loss in the objective: 1 / (number of unmasked targets of the
// whole optimizer step) for the training loss. dlogits OVERWRITES and may alias logits (in place,
// as the training step does: the probabilities are never stored). dlogits may be null (evaluation).
// Memory: one read of the row for max and sum, one read + write for the gradient.
// A target outside [0, V) that is not kIgnoreIndex throws std::out_of_range naming the row.
#pragma once

#include <cstdint>

namespace gpt::cpu {

constexpr int32_t kIgnoreIndex = -1;

template <typename F>
void crossentropy_forward_backward(F* losses, F* dlogits, const F* logits, const int32_t* targets,
                                   int N, int V, int Vp, F dloss);

}  // namespace gpt::cpu
