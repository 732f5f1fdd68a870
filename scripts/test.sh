#!/usr/bin/env bash
# The project's test command (README, .ci/run): set-up when needed, configure, build, run ctest.
# Prints ctest's summary and exits non-zero on any failure. Needs no GPU: tests labelled `gpu` skip
# themselves. Environment: BUILD_DIR (default build), GPT_CUDA (ON/OFF, default: ON where nvcc is
# found), JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# GNU OpenMP busy-waits by default, which is several times slower on a shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

bash scripts/setup.sh
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
