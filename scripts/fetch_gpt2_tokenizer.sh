#!/usr/bin/env bash
# Downloads GPT-2's tokenizer files (encoder.json, vocab.bpe) from OpenAI's public blob storage,
# checks them against the sha256 that tiktoken pins, and puts them in DIR (default: .deps/gpt2 in
# the repository, where `--tokenizer gpt2` looks; or set GPT_TOKENIZER_DIR to DIR). Idempotent.
#
#   bash scripts/fetch_gpt2_tokenizer.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.deps/gpt2}
BASE=https://openaipublic.blob.core.windows.net/gpt-2/encodings/main
declare -A SHA256=(
  [encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
)
mkdir -p "$DIR"
for name in encoder.json vocab.bpe; do
  if [[ -f "$DIR/$name" ]] && echo "${SHA256[$name]}  $DIR/$name" | sha256sum -c --quiet - 2>/dev/null; then
    echo "fetch_gpt2_tokenizer: $DIR/$name present"
    continue
  fi
  tmp="$DIR/$name.part"
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$tmp" "$BASE/$name"
  else
    wget -q -O "$tmp" "$BASE/$name"
  fi
  if ! echo "${SHA256[$name]}  $tmp" | sha256sum -c --quiet -; then
    rm -f "$tmp"
    echo "fetch_gpt2_tokenizer: $name does not have the expected sha256" >&2
    exit 1
  fi
  mv "$tmp" "$DIR/$name"
  echo "fetch_gpt2_tokenizer: $DIR/$name"
done
