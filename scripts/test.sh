#!/usr/bin/env bash
# The project's test command (README, .ci/run): set-up when needed, configure, build, run ctest.
# Prints ctest's summary and exits non-zero on any failure. Needs no GPU: tests labelled `gpu` skip
# themselves; the same tests then run under the CPU emulation of CUDA (label emu, in build-emu).
# Environment: BUILD_DIR (default build), GPT_CUDA (ON/OFF, default: ON where nvcc is found), JOBS
# (default: number of cores), EMU (0: skip the emulated GPU tests), EMU_BUILD_DIR (build-emu).
set -euo pipefail
cd "$(dirname "$0")/.."
# GNU OpenMP busy-waits by default, which is several times slower on a shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

bash scripts/setup.sh
# The sources as clang-format writes them (.clang-format): a second before anything is built.
bash scripts/check_format.sh
# Python reference packages (tiktoken, tokenizers, safetensors) in .venv; their checks skip without them.
bash scripts/python_deps.sh

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake_args=(-S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release)
if [[ -n "${GPT_CUDA:-}" ]]; then cmake_args+=(-DGPT_CUDA="$GPT_CUDA"); fi

cmake "${cmake_args[@]}"
cmake --build "$BUILD_DIR" -j "$JOBS"
# Two OpenMP threads per test process; ctest runs tests one at a time so timings stay sane.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600

# The GPU tests again, under the CPU emulation of CUDA (tests/cuda_emu, docs/testing.md): the
# shipped CUDA sources compiled as host C++, every launch run under several schedules, every
# kernel of kernels/ launched at least once. A build of its own; EMU=0 skips it.
if [[ "${EMU:-1}" != 0 ]]; then
  EMU_BUILD_DIR=${EMU_BUILD_DIR:-build-emu}
  cmake -S . -B "$EMU_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPT_CUDA=OFF \
    -DGPT_CUDA_EMU=ON -DGPT_BUILD_BENCH=OFF
  cmake --build "$EMU_BUILD_DIR" -j "$JOBS" --target emu_tests
  ctest --test-dir "$EMU_BUILD_DIR" -L emu --output-on-failure --timeout 1200
fi
