#!/usr/bin/env bash
# One-step setup for a fresh Python >= 3.10 machine, GPU or not.
#   ./dev.sh demo   install wan_nb into ./.venv and run `wan-nb demo`
#   ./dev.sh test   install wan_nb[dev] into ./.venv and run pytest, ruff and the notebooks (nbval)
set -euo pipefail
cd "$(dirname "$0")"

task=${1:-}
case "$task" in
  demo|test) ;;
  *) echo "usage: ./dev.sh demo | ./dev.sh test" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
py=.venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

# torch: wan_nb asks only for a lower bound so a user's own CUDA/ROCm build is kept. When
# torch is absent, take the CPU build first (WAN_NB_TORCH overrides the requirement), so
# resolving wan_nb's dependencies does not pull a multi-GB CUDA build onto a CPU machine.
if ! "$py" -c "import torch" >/dev/null 2>&1; then
  pip install "${WAN_NB_TORCH:-torch==2.13.0}"
fi

if [ "$task" = demo ]; then
  pip install -e .
  exec .venv/bin/wan-nb demo
fi

pip install -e ".[dev]"
status=0
.venv/bin/python -m pytest -q || status=$?
.venv/bin/ruff check wan_nb tests benchmarks || status=$?
if compgen -G "notebooks/*.ipynb" >/dev/null; then
  .venv/bin/python -m pytest -q --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks/ || status=$?
else
  echo "no notebooks yet: nbval skipped"
fi
exit $status
