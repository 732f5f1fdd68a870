// Data-parallel gradient reduction and the optimizer over shards (ZeRO-1).
//
// The trainable gradients of a model, concatenated in parameter-group order, form one flat vector
// of P elements (the flat space). It is cut into N shards of S elements each, S = ceil(P / N)
// rounded up to a multiple of kNormBlock; the last shards are padded with zeros (any P works, a
// shard may even be empty). Rank r owns [r·S, (r+1)·S).
//
// A step (engine/trainer.cpp drives it):
//   for each round i (one micro-batch per rank, micro-batch k = i·N + rank of the global step):
//     zero the model's gradients, forward/backward the micro-batch, then reduce_round(i == 0):
//     the gradients are packed into the flat space and reduce-scattered into this rank's shard
//     accumulator, added in micro-batch order (rank order within a round, rounds in order).
//   grad_norm(): the L2 norm of the whole reduced gradient: sums of squares of fixed blocks of
//     kNormBlock elements, gathered and added in block order.
//   step(lr): clip by that norm, AdamW on this rank's shard only (its m, v and, for bf16, master
//     weights are all the optimizer state this rank holds), then the updated parameters are
//     all-gathered so that every rank holds the whole model again.
//
// Every sum above has an order fixed by the data (micro-batch, block), not by the world size: with
// the host communicators (single, mpi) N ranks give bitwise the losses, norms and weights of one
// process taking the same global batch. With device buffers (nccl) a rank accumulates its
// micro-batches locally and the gradients are reduce-scattered once per step, in NCCL's order.
//
// Without ZeRO (zero = false) the reduced shards are all-gathered into a full gradient and every
// rank updates every parameter (full optimizer state on every rank; the same bits).
//
// One rank on a GPU (the single communicator with a device backend) is a pass-through: no flat
// buffers, no copies, AdamW straight on the model's gradients with its own norm, exactly the
// plain single-GPU trainer. A CPU run of one rank keeps the flat space, so that its norm is added
// in the same block order as on N ranks (the bitwise guarantee).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/arena.h"
#include "engine/communicator.h"
#include "engine/model_interface.h"
#include "engine/optimizer.h"
#include "engine/safetensors.h"

namespace gpt {

// The --zero setting: 1 shards the optimizer state, 0 does not, -1 shards it when there are several
// ranks.
inline bool zero_enabled(int zero_setting, int world_size) {
  return zero_setting < 0 ? world_size > 1 : zero_setting == 1;
}

class DataParallel {
 public:
  static constexpr int64_t kNormBlock = 2048;

  // groups: the model's parameter groups (frozen ones are skipped). The optimizer state exists only
  // for this rank's part (or all of it without zero).
  DataParallel(Communicator& comm, Backend& backend, std::vector<ParamGroup> groups,
               const AdamWConfig& config, bool zero);
  ~DataParallel();

  Communicator& comm() const { return comm_; }
  bool zero() const { return zero_; }
  // Whether a step reduces once per round (host buffers: exact order) or once per step (device).
  bool reduce_every_round() const { return !direct_ && !comm_.device_buffers(); }
  // One rank on a GPU: a pass-through (no buffers, AdamW on the model's gradients directly).
  bool direct() const { return direct_; }
  int64_t flat_elements() const { return flat_; }
  int64_t shard_elements() const { return shard_; }

  // One segment of a parameter group inside the part of the flat space this rank updates.
  struct Segment {
    int group;           // index into groups()
    int64_t begin, end;  // element range inside the group's tensor
    int64_t flat_begin;  // where begin sits in the flat space
  };
  // The segments rank `rank` updates (all segments without zero), for world size `world`.
  std::vector<Segment> segments_of(int rank) const;
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // The optimizer over this rank's segments: step count, state bytes, checkpoints.
  AdamW& optimizer() { return *optimizer_; }
  long step_count() const { return optimizer_->step_count(); }
  size_t optimizer_bytes() const { return optimizer_->state_bytes(); }
  // Bytes of the reduction buffers (flat send buffer, shard accumulator, full gradient).
  size_t buffer_bytes() const;

  // After a round's backward (the model's gradients hold one micro-batch, or with device buffers
  // all of this rank's micro-batches): adds them into the shard accumulator (first: replaces it).
  void reduce_round(bool first);
  // The L2 norm of the reduced global gradient; the same bits on every rank.
  double grad_norm();
  // Clip, AdamW on this rank's segments, parameters all-gathered. Returns the norm before clipping.
  // Throws std::runtime_error for a non-finite norm.
  double step(float lr);
  // step() in two halves: grad_norm() above, then the update with that norm (the trainer looks at
  // the norm in between: --on-nonfinite).
  double apply(float lr, double norm);
  // Collective, after a non-finite norm: the name of the first trainable tensor (in rank order,
  // then parameter order) whose reduced gradient holds a NaN or an infinity ("" if none does).
  std::string first_nonfinite_gradient();
  // Test hook (GPT_TEST_NONFINITE): a NaN in the first element of this rank's reduced gradient.
  void poison_gradient_for_test();

  // ---- checkpoints ------------------------------------------------------------------------------
  // The optimizer state of this rank's segments, named "<group>.m"/".v"/".master" for a whole
  // group and "<group>@<begin>:<end>.m" for part of one, with metadata world_size, rank, zero.
  SafeTensorsFile shard_state();
  // Every rank's shard_state() on rank 0 (rank order); empty elsewhere. Collective.
  std::vector<SafeTensorsFile> gather_state();
  // Restores the state from the shard files of a checkpoint written at any world size (or one
  // unsharded file): the parts are put together and this rank's range is cut out. Validates every
  // tensor first; throws std::runtime_error naming the file and tensor.
  void load_state(const std::vector<std::pair<std::string, SafeTensorsFile>>& files);

 private:
  std::vector<ParamGroup> make_shard_groups(const std::vector<Segment>& segs) const;
  Communicator& comm_;
  Backend& backend_;
  std::vector<ParamGroup> groups_;  // trainable only
  std::vector<int64_t> flat_offset_;
  AdamWConfig config_;
  bool zero_;
  bool direct_;
  int64_t flat_ = 0, shard_ = 0;
  std::vector<Segment> my_segments_;
  std::unique_ptr<Arena> buffers_;  // send (N·S), accumulator (S), full gradient (N·S, no zero)
  Tensor send_, accum_, full_;
  std::unique_ptr<AdamW> optimizer_;
};

}  // namespace gpt
