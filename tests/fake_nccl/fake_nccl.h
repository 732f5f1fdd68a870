// A fake libnccl for the emulated build (GPT_CUDA_EMU): a test double with the symbols and
// signatures of the real nccl.h, so that engine/communicator_nccl.cpp compiles unchanged and runs
// without a GPU. A world of one rank on the emulated device: every collective copies send to recv
// (the sum, max, gather or broadcast over one rank), with the emulator's cudaMemcpy, which refuses
// buffers that are not device memory.
//
// It behaves as NCCL does for a non-blocking communicator (config.blocking = 0):
//   - ncclCommInitRankConfig and ncclCommFinalize answer ncclInProgress, and so does every
//     collective; ncclCommGetAsyncError then answers ncclInProgress `in_progress` times before
//     ncclSuccess. A collective's copy happens only when the state turns to ncclSuccess, so a
//     caller that does not poll never sees its data.
//   - Any other call on a communicator that is still in progress is refused with
//     ncclInvalidUsage (NCCL's documentation forbids it), with a message on stderr.
// A blocking communicator (config.blocking unset or 1, or ncclCommInitRank) never answers
// ncclInProgress.
//
// in_progress comes from the environment variable GPT_FAKE_NCCL_IN_PROGRESS (default 3; 0: no
// call answers ncclInProgress) or set_in_progress(). Every collective is recorded with the stream
// it was given (calls()); GPT_FAKE_NCCL_LOG=PATH also appends one line per NCCL call and per
// ncclInProgress answer to PATH, for the CLI tests.
#pragma once

#include <nccl.h>

#include <cstddef>
#include <string>
#include <vector>

namespace fake_nccl {

struct Call {
  std::string op;       // "all_reduce", "broadcast", "reduce_scatter", "all_gather"
  cudaStream_t stream;  // as given to the collective
  size_t count;         // elements (recvcount for reduce_scatter, sendcount for all_gather)
  ncclDataType_t type;
  bool answered_in_progress;  // the call itself returned ncclInProgress
};

// The collectives issued since the last reset(), in order.
std::vector<Call> calls();
// How many times a call or a poll answered ncclInProgress since the last reset().
int in_progress_answers();
void reset();
// Polls answering ncclInProgress after each call that answers it (overrides the environment).
void set_in_progress(int polls);

}  // namespace fake_nccl
