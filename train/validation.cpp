#include "train/validation.h"

namespace gpt {

std::vector<double> rank_split_sums(Communicator& comm, int64_t num_batches, int columns,
                                    const std::function<void(int64_t)>& read,
                                    const std::function<void(int64_t, double*)>& run) {
  const size_t n = static_cast<size_t>(num_batches);
  std::vector<std::vector<double>> per_batch(static_cast<size_t>(columns),
                                             std::vector<double>(n, 0.0));
  std::vector<double> values(static_cast<size_t>(columns));
  for (int64_t i = 0; i < num_batches; ++i) {
    read(i);
    if (i % comm.world_size() != comm.rank()) continue;
    std::fill(values.begin(), values.end(), 0.0);
    run(i, values.data());
    for (size_t c = 0; c < values.size(); ++c) per_batch[c][static_cast<size_t>(i)] = values[c];
  }
  std::vector<double> sums(static_cast<size_t>(columns), 0.0);
  for (size_t c = 0; c < per_batch.size(); ++c) {
    comm.all_reduce_sum(per_batch[c].data(), per_batch[c].size());
    for (double v : per_batch[c]) sums[c] += v;
  }
  return sums;
}

}  // namespace gpt
