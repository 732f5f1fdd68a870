#!/usr/bin/env bash
# Installs every Debian package the build and the tests need. Idempotent and non-interactive; fine
# as root on a machine with nothing installed (uses sudo when not root and sudo exists).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenblas-openmp-dev   # CPU matmul (the OpenMP build; Debian's reference BLAS is ~17x slower)
  libgtest-dev             # GoogleTest
  libcli11-dev             # command-line flags
  nlohmann-json3-dev       # JSON configs and logs
  zlib1g-dev               # gpt-prepare reads .gz inputs (multi30k)
  libomp-dev               # OpenMP runtime headers for clang users; g++ ships libgomp
  clang libclang-rt-dev    # the libFuzzer targets (scripts/test_fuzz.sh, tests/fuzz)
  clang-format             # the sources' layout, checked by scripts/check_format.sh
  libopenmpi-dev openmpi-bin   # data parallel over MPI (GPT_MPI) and mpirun for the distributed tests
  tmux                     # the progress-line test runs the apps on a terminal (tests/cli/progress.sh)
  libboost-context-dev     # fibers for the CPU emulation of CUDA (tests/cuda_emu)
  python3 python3-venv python3-pip   # reference scripts and metric cross-checks (venv in .venv)
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup.sh: not root and no sudo: install these packages by hand: ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup.sh: all packages present"
  exit 0
fi
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
