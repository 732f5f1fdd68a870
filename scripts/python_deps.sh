#!/usr/bin/env bash
# Creates the repository's Python environment (.venv) and installs the reference packages the
# cross-checks use: tiktoken (GPT-2 tokenizer reference), tokenizers (Hugging Face), safetensors and
# numpy (tests/reference/check_safetensors.py; torch and transformers are not installed here),
# sacrebleu, rouge-score, nltk and scikit-learn (tests/reference/check_metrics.py), and matplotlib
# (scripts/plot_run.py, the training report: docs/report.md). Idempotent: does nothing when they
# are already there. Versions are pinned so a new Unicode version in a
# later release cannot change the reference under our feet (see scripts/gen_unicode_table.py).
# Failing to install (no network) is not an error: the checks that need them skip themselves.
set -uo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(tiktoken==0.14.0 tokenizers==0.23.3 safetensors==0.8.0 numpy==2.4.6
          sacrebleu==2.6.0 rouge-score==0.1.2 nltk==3.10.4 scikit-learn==1.9.1 matplotlib==3.11.2)
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv || { echo "python_deps.sh: cannot create .venv (python3-venv missing?)" >&2; exit 0; }
fi
if .venv/bin/python -c "import tiktoken, tokenizers, safetensors, numpy, sacrebleu, rouge_score, nltk, sklearn, matplotlib" 2>/dev/null; then
  echo "python_deps.sh: .venv has tiktoken, tokenizers, safetensors, numpy, the metrics references and matplotlib"
  exit 0
fi
if ! .venv/bin/pip install -q "${PACKAGES[@]}"; then
  echo "python_deps.sh: pip install ${PACKAGES[*]} failed; the reference checks will be skipped" >&2
fi
exit 0
