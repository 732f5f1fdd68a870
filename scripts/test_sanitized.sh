#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer + UndefinedBehaviorSanitizer (docs/reliability.md): a
# separate build (GPT_CUDA=OFF, BUILD_DIR default build-asan, -O2 -g), then ctest; any report fails
# the run (ASan aborts on the first error, UBSan is built with -fno-sanitize-recover). Run by
# .ci/run after scripts/test.sh (which installs the packages and the Python references).
#   Not run here: cli.report (matplotlib and a headless browser; nothing of ours to sanitize beyond
#   what cli.resume runs) and cli.slurm (its srun runs are the mpirun runs of cli.distributed).
#   Leak checking is off for the tests that start OpenMPI (test_communicator.mpirun_np3,
#   cli.distributed, cli.faults, cli.llama): OpenMPI keeps its own allocations until exit, in plugins LSan
#   cannot name; address and UB checking stay on for them.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# GCC's -Wmaybe-uninitialized and friends misfire on sanitizer-instrumented code (libstdc++'s regex
# and std::function): warnings there stay warnings in this build only.
san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
quiet="-Wno-error=maybe-uninitialized -Wno-error=uninitialized -Wno-error=stringop-overflow -Wno-error=array-bounds -Wno-error=null-dereference"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPT_CUDA=OFF -DGPT_BUILD_BENCH=OFF \
  "-DCMAKE_CXX_FLAGS=$san $quiet" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
export UBSAN_OPTIONS=print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1
mpi_tests='test_communicator\.mpirun_np3|cli\.distributed|cli\.faults|cli\.llama'
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -E "cli\.report|cli\.slurm|$mpi_tests"
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -R "$mpi_tests"
echo "sanitized suite: ok"
