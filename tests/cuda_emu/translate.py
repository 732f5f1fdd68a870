#!/usr/bin/env python3
"""Turns a CUDA source into host C++ for the CPU emulation of CUDA (tests/cuda_emu).

Two rewrites, nothing else (the rest of the file compiles against tests/cuda_emu/include):
  kernel<T><<<grid, block, smem, stream>>>(args);
    -> ::cuda_emu::launch(reinterpret_cast<const void*>(&kernel<T>), "kernel<T>", __FILE__,
                          __LINE__, ::cuda_emu::LaunchConfig(grid, block, smem, stream),
                          ::cuda_emu::pointers_of(args), [&]() { kernel<T>(args); });
  (pointers_of collects the pointer arguments: the memory the kernel can reach.)
  extern __shared__ __align__(N) T name[];
    -> T* const name = static_cast<T*>(::cuda_emu::dynamic_shared());
Line numbers are kept (a #line directive names the original file), so compiler errors and the
emulator's messages point into the shipped source.

Usage: translate.py SOURCE OUTPUT DISPLAY_NAME [MANIFEST]
MANIFEST, when given, receives one "DISPLAY_NAME:kernel" line per __global__ function.
"""
import re
import sys

SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s:]*?)\s+([A-Za-z_]\w*)\s*\[\s*\]\s*;")
GLOBAL = re.compile(r"__global__\s+(?:void)\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(")


def match_back(text, end, open_ch, close_ch):
    """Index of the open_ch matching the close_ch at text[end]."""
    depth = 0
    i = end
    while i >= 0:
        if text[i] == close_ch:
            depth += 1
        elif text[i] == open_ch:
            depth -= 1
            if depth == 0:
                return i
        i -= 1
    raise ValueError("unbalanced %s%s" % (open_ch, close_ch))


def match_forward(text, start, open_ch, close_ch):
    depth = 0
    i = start
    while i < len(text):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced %s%s" % (open_ch, close_ch))


def rewrite_launches(text, path):
    out = []
    pos = 0
    while True:
        at = text.find("<<<", pos)
        if at < 0:
            out.append(text[pos:])
            return "".join(out)
        # The callee: an identifier path, maybe with template arguments, before <<<.
        i = at - 1
        while i >= 0 and text[i].isspace():
            i -= 1
        if text[i] == ">":
            i = match_back(text, i, "<", ">") - 1
        while i >= 0 and (text[i].isalnum() or text[i] in "_:"):
            i -= 1
        start = i + 1
        callee = text[start:at].strip()
        if not callee:
            raise ValueError("%s: no kernel name before <<<" % path)
        close = text.find(">>>", at)
        config = text[at + 3:close]
        j = close + 3
        while text[j].isspace():
            j += 1
        if text[j] != "(":
            raise ValueError("%s: expected ( after >>>" % path)
        args_end = match_forward(text, j, "(", ")")
        args = text[j + 1:args_end]
        name = " ".join(callee.split())
        out.append(text[pos:start])
        out.append(
            '::cuda_emu::launch(reinterpret_cast<const void*>(&%s), "%s", __FILE__, __LINE__, '
            "::cuda_emu::LaunchConfig(%s), ::cuda_emu::pointers_of(%s), [&]() { %s(%s); })"
            % (callee, name.replace('"', '\\"'), config, args, callee, args))
        pos = args_end + 1


def main():
    source, output, display = sys.argv[1], sys.argv[2], sys.argv[3]
    text = open(source, encoding="utf-8").read()
    text = SHARED.sub(lambda m: "%s* const %s = static_cast<%s*>(::cuda_emu::dynamic_shared());"
                      % (m.group(1).strip(), m.group(2), m.group(1).strip()), text)
    text = rewrite_launches(text, display)
    with open(output, "w", encoding="utf-8") as f:
        f.write('#line 1 "%s"\n' % display)
        f.write(text)
    if len(sys.argv) > 4:
        original = open(source, encoding="utf-8").read()
        with open(sys.argv[4], "w", encoding="utf-8") as f:
            for name in sorted(set(GLOBAL.findall(original))):
                f.write("%s:%s\n" % (display, name))


if __name__ == "__main__":
    main()
