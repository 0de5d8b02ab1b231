#!/usr/bin/env bash
# One command for one CUDA GPU, no download, under 8 minutes: wan_nb's CUDA tests, then the
# estimated vs measured peak of a real-size Wan 2.1 T2V 1.3B (random weights) at 480P x 33
# and x 81 frames under none, vae_tiling, model_cpu_offload and group_offload.
#   benchmarks/gpu_check.sh [TABLE]     # TABLE default: $OUT/gpu_check.tsv, else ./gpu_check.tsv
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
TABLE="${1:-${OUT:-.}/gpu_check.tsv}"
mkdir -p "$(dirname "$TABLE")"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
echo "== pytest -k cuda"
timeout 180 "$PY" -m pytest -q -k cuda tests | tail -n 5
echo "== real-size Wan 2.1 T2V 1.3B, estimated vs measured -> $TABLE"
timeout 360 "$PY" benchmarks/gpu_check.py --out "$TABLE"
column -t -s $'\t' "$TABLE" 2>/dev/null || cat "$TABLE"
