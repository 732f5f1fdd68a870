#!/usr/bin/env python3
"""Fails unless every __global__ kernel of the project's CUDA sources was launched by the
emulated test run (tests/cuda_emu): MANIFEST_DIR holds the kernels per translated file (written
by translate.py), LOG the "file:kernel" lines the test processes appended as they exited."""
import pathlib
import sys

manifest_dir, log = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
kernels = set()
for f in sorted(manifest_dir.glob("*.txt")):
    kernels.update(line.strip() for line in f.read_text().splitlines() if line.strip())
launched = set()
if log.exists():
    launched = {line.strip() for line in log.read_text().splitlines() if line.strip()}
missing = sorted(k for k in kernels if k not in launched)
print("%d kernels in the CUDA sources, %d launched under the emulator" % (len(kernels), len(kernels) - len(missing)))
if not kernels:
    print("no kernels found in %s" % manifest_dir)
    sys.exit(1)
if missing:
    print("never launched by any emu test:")
    for k in missing:
        print("  " + k)
    sys.exit(1)
