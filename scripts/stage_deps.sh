#!/usr/bin/env bash
# Stages what the build needs and a GPU node without package access lacks into .deps/ (ignored by
# git), so that the node can build with -DGPT_DEPS_DIR=.deps (see CMakeLists.txt):
#
#   .deps/include/nlohmann   header-only JSON      (from nlohmann-json3-dev)
#   .deps/include/CLI        header-only CLI11     (from libcli11-dev)
#   .deps/googletest         GoogleTest's sources  (from libgtest-dev: /usr/src/googletest)
#
# Run it here (a machine where scripts/setup.sh installed the Debian packages), then carry .deps to
# the GPU node with the working tree; scripts/gpu_check.sh uses it. Idempotent: replaces .deps.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  if [[ ! -e "$1" ]]; then
    echo "stage_deps.sh: $1 is missing: run scripts/setup.sh first (it installs $2)" >&2
    exit 1
  fi
}
need /usr/include/nlohmann/json.hpp nlohmann-json3-dev
need /usr/include/CLI/CLI.hpp libcli11-dev
need /usr/src/googletest/CMakeLists.txt libgtest-dev

rm -rf .deps
mkdir -p .deps/include
cp -r /usr/include/nlohmann .deps/include/
cp -r /usr/include/CLI .deps/include/
cp -r /usr/src/googletest .deps/googletest
echo "stage_deps.sh: staged $(du -sh .deps | cut -f1) in .deps (nlohmann/json, CLI11, GoogleTest sources)"
