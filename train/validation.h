// Validation split over the ranks: batch i is rank i mod N's. Every rank reads every batch (its
// loader stays in step with the others'), runs only its own, and the per-batch values are summed
// over the ranks and then in batch order: the same bits as one process.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/communicator.h"

namespace gpt {

// read(i) on every rank for i = 0..num_batches-1; run(i, values) on batch i's rank fills `columns`
// values (zero elsewhere). Each column is summed over the ranks (one all-reduce a column) and then
// over the batches; returns the column sums.
std::vector<double> rank_split_sums(Communicator& comm, int64_t num_batches, int columns,
                                    const std::function<void(int64_t)>& read,
                                    const std::function<void(int64_t, double*)>& run);

}  // namespace gpt
