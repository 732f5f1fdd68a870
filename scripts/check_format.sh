#!/usr/bin/env bash
# Checks that the project's C++ and CUDA sources are as clang-format (Debian's, .clang-format at the
# root) would write them; prints the first differences and exits 1 otherwise. Run by scripts/test.sh.
# To fix: clang-format -i $(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check_format.sh: clang-format not found (scripts/setup.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if ! clang-format --dry-run -Werror "${files[@]}" 2>"$report"; then
  head -40 "$report" >&2
  echo "check_format.sh: the files above are not clang-formatted; run clang-format -i on them" >&2
  exit 1
fi
echo "check_format.sh: ${#files[@]} files clang-formatted"
