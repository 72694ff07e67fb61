#!/usr/bin/env bash
# The runs behind the results page, docs/results.md (the script keeps its old name). Each is one
# `attnaudit run`; rerunning reuses finished stages. Takes about an hour on 2 CPU cores. Usage: bash benchmarks/readme_results.sh [OUT]
set -euo pipefail
out=${1:-runs/results}
imdb=../shared/data/imdb50k.jsonl.gz
attnaudit=${ATTNAUDIT:-.venv/bin/attnaudit}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # two runs side by side on 2 cores

# The shipped default data (news articles, 9 outlets), all six variants, default settings.
$attnaudit run --data default --out "$out/news" &
# IMDB (Maas et al. 2011), binary and 8 star-rating classes: a stratified 4,000-document training
# subsample, 2 epochs, and 2,000 test documents audited, to keep the whole set near an hour on a laptop.
if [ -f "$imdb" ]; then
  $attnaudit run --data "$imdb" --max-train-docs 4000 --max-test-docs 2000 --epochs 2 \
    --out "$out/imdb-binary"
  $attnaudit run --data "$imdb" --label-column rating --max-train-docs 4000 --max-test-docs 2000 \
    --epochs 2 --out "$out/imdb-rating"
else
  echo "IMDB not found at $imdb: skipping the IMDB runs" >&2
fi
wait
.venv/bin/python benchmarks/results_table.py "$out"/news "$out"/imdb-binary "$out"/imdb-rating
