#!/usr/bin/env bash
# One-step setup for a fresh Python >= 3.10 machine, GPU or not.
#   ./dev.sh demo   install wan_nb into ./.venv and run `wan-nb demo`
#   ./dev.sh test   install wan_nb[dev] into ./.venv and run pytest, ruff and the notebooks (nbval)
#   ./dev.sh browser [SCREENSHOT_DIR]
#                   the notebooks in JupyterLab + Chromium (Run All, save, reopen), screenshots to the
#                   folder; installs Debian's chromium + chromium-driver (apt-get) and wan_nb[browser].
#                   Exit 3: what it needs could not be installed (nothing was checked).
set -euo pipefail
cd "$(dirname "$0")"

task=${1:-}
case "$task" in
  demo|test|browser) ;;
  *) echo "usage: ./dev.sh demo | ./dev.sh test | ./dev.sh browser [SCREENSHOT_DIR]" >&2; exit 2 ;;
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

if [ "$task" = browser ]; then
  skip() { echo "browser check skipped: $*" >&2; exit 3; }
  # Debian's own packages, no browser download. Bounded, so CI can go on without them.
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt=(apt-get); [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && apt=(sudo -n apt-get); } || skip "chromium is not installed and apt-get needs root"
    { timeout 120 "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive timeout 240 "${apt[@]}" install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
      || skip "apt-get could not install chromium and chromium-driver in time"
  fi
  timeout 240 "$py" -m pip --disable-pip-version-check -q install -e ".[dev,browser]" \
    || skip "pip could not install wan_nb[browser] (selenium, jupyterlab) in time"
  shots=${2:-$(mktemp -d -t wan_nb_screenshots.XXXXXX)}
  # The check stops its JupyterLab (and kernels) itself; the trap passes an interrupt on to it
  # so that it can. `timeout` keeps the whole check under 5 minutes.
  timeout -s TERM 290 "$py" tools/browser_check.py --screenshots "$shots" &
  check=$!
  trap 'kill -TERM "$check" 2>/dev/null || true' EXIT INT TERM
  status=0
  wait "$check" || status=$?
  trap - EXIT INT TERM
  [ "$status" = 124 ] && echo "browser check: stopped after 290 s" >&2
  exit "$status"
fi

pip install -e ".[dev]"
status=0
.venv/bin/python -m pytest -q || status=$?
.venv/bin/ruff check wan_nb tests benchmarks tools || status=$?
# The floors of DESIGN.md: imports only point down (the contract is in pyproject.toml).
.venv/bin/lint-imports || status=$?
if compgen -G "notebooks/*.ipynb" >/dev/null; then
  .venv/bin/python -m pytest -q --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks/ || status=$?
else
  echo "no notebooks yet: nbval skipped"
fi
exit $status
