"""Write the example notebooks and execute them, storing their outputs (nbval checks them in CI).

    .venv/bin/python notebooks/_build.py            # all four
    .venv/bin/python notebooks/_build.py 01 03      # some

The notebooks are the specification of the notebook layer: edit them here, not in Jupyter,
so that every run writes the same cells. Execution uses the environment nbval uses
(``WAN_NB_NO_WIDGETS=1``: the live tables print as text, which GitHub and nbval can read).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

COLAB = '''\
# NBVAL_SKIP
# On Colab, install wan_nb first; anywhere else this cell does nothing.
# wan_nb is not on PyPI: point WAN_NB_SOURCE at what pip should install, e.g.
# "git+https://github.com/<you>/wan_nb" (your copy of the repository) or an uploaded wheel.
import sys

WAN_NB_SOURCE = "wan_nb"
if "google.colab" in sys.modules:
    %pip install --quiet {WAN_NB_SOURCE}'''

SETUP = '''\
%load_ext wan_nb
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import diffusers
import transformers
from diffusers import DiffusionPipeline

from wan_nb.fixtures import tiny_call_kwargs, tiny_pipeline_path
from wan_nb.memory import memory_budget
from wan_nb.notebook import plot_recovery, plot_report, plot_stages, readable

# Loading bars: noise in a stored notebook (and each attempt that loads a fresh copy shows them).
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.disable_progress_bar()'''

TINY = '''\
# NBVAL_IGNORE_OUTPUT
path = tiny_pipeline_path("wan2.2-t2v-a14b")  # built once (random weights), then cached
pipe = DiffusionPipeline.from_pretrained(path)
pipe.set_progress_bar_config(disable=True)
call = tiny_call_kwargs("wan2.2-t2v-a14b", height=128, width=128)  # 5 frames, 2 steps'''

# The failing cells carry the `raises-exception` tag (Jupyter's Run All goes on past them, and
# nbval and nbclient read it too); this first line says so to a reader of the cell.
RAISES = "# Fails on purpose (tagged raises-exception, so Run All goes on)."
FAIL = f'''\
{RAISES}
# NBVAL_IGNORE_OUTPUT
before = "set before the failure"  # stays set: the rerun runs the whole cell again
with memory_budget("16MB"):
    video = pipe(**call).frames[0]
video.shape'''


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip())


# -- 01 ----------------------------------------------------------------------------------------------
def quickstart():
    return [
        md("""
# wan_nb quickstart: a failed video generation, explained and recovered

A Wan 2.2 pipeline runs out of memory in a notebook. wan_nb says what failed and where,
reruns the failing cell under the fallbacks that should fit, measures each, and hands back
the code that worked.

Everything here runs on a CPU in well under a minute: the pipeline is a *tiny real* Wan 2.2
pipeline (the real diffusers classes, two experts, random weights), and the small GPU is a
*memory budget* — a run that goes over it fails with a genuine `torch.OutOfMemoryError`,
as on a card that is too small. On a GPU the same cells work unchanged.
"""),
        code(COLAB),
        md("`%load_ext wan_nb` adds the magics and a hook that remembers the last cell that failed "
           "(its code and its diagnosis, never the exception: that would keep its GPU memory alive)."),
        code(SETUP),
        md("A tiny Wan 2.2 text-to-video pipeline, loaded the usual way. `%wan_analyze` reads its "
           "`model_index.json` and the safetensors headers (never the weights):"),
        code(TINY),
        code("%wan_analyze $path"),
        md("""
## The failure

Decoding 5 frames of 128x128 needs about 19 MB here. On a device with 16 MB the VAE decode
fails, as a 720p decode does on a 16 GB card:
"""),
        code(FAIL),
        md("`%wan_diagnose` explains the last failure: the category, the stage, the evidence, what to try."),
        code("# NBVAL_IGNORE_OUTPUT\ndiagnosis = %wan_diagnose\ndiagnosis"),
        code("print(diagnosis.category, diagnosis.stage, diagnosis.component, diagnosis.recoverable)"),
        md("""
## Recover

`%wan_recover` reruns the failed cell under the plan: each strategy predicted to fit is
applied, the cell rerun and measured, the pipeline put back, until one works. The table
gains a row per attempt (a live widget in Jupyter, text elsewhere). `--budget 16MB` makes the
plan judge its predictions against the same small device.
"""),
        code("# NBVAL_IGNORE_OUTPUT\n%wan_recover --budget 16MB"),
        md("The variables the cell assigns are set, as if it had worked the first time; the report is `_wan_report`:"),
        code('''\
report = _wan_report
print("recovered with:", report.winner)
print("attempts:", [(a.strategy, a.status) for a in report.attempts])
print("video:", video.shape, "| before:", before)
print("measured peak within the budget:", report.attempts[-1].measured_peak_bytes <= report.budget_bytes)
print("pipeline put back as it was:", pipe.vae.use_tiling is False)'''),
        md("## The table, the plot, the snippet"),
        code("# NBVAL_IGNORE_OUTPUT\nreport"),
        code("# NBVAL_IGNORE_OUTPUT\nreport.plot()"),
        md("The code that worked, for this model and these settings (`%wan_recover --insert` puts it in a new cell):"),
        code("print(report.snippet())"),
        md("""
## Next

- `%wan_recover --explore` tries every strategy that fits and compares them
  (`03_vram_profiling`); `--dry-run` shows the plan with its estimates and runs nothing.
- `--apply` keeps the winner on `pipe` for the cells that follow; `--allow-degraded` lets
  fewer frames or a lower resolution in; `%%wan_recover` runs its own cell and recovers it
  if it fails.
- `02_component_analysis` checks a model folder before loading it; `04_how_fallbacks_work`
  explains each strategy with its measured effect.
"""),
    ]


# -- 02 ----------------------------------------------------------------------------------------------
def component_analysis():
    return [
        md("""
# Component analysis: what is in a model folder, before loading it

`analyze_model_components` (and `%wan_analyze`) read `model_index.json`, each component's
config and the safetensors headers — never the weights — and say for each component whether
it is there, complete, importable with the installed libraries, and how big it is. This is
what tells a missing VAE or a truncated download apart from an out-of-memory error.
"""),
        code(COLAB),
        code('''\
%load_ext wan_nb
import tempfile
import time
from pathlib import Path

from wan_nb import analyze_model_components, format_bytes
from wan_nb.fixtures import copy_model, remove_component, set_pipeline_class, tiny_pipeline_path, truncate_weights
from wan_nb.fixtures import write_synthetic_checkpoint

work = Path(tempfile.mkdtemp(prefix="wan_nb_components_"))
healthy = tiny_pipeline_path("wan2.1-t2v")  # a tiny real Wan 2.1 pipeline (random weights)'''),
        md("## A healthy folder"),
        code("# NBVAL_IGNORE_OUTPUT\n%wan_analyze $healthy"),
        code('''\
report = analyze_model_components(healthy)
print(report.ok, report.pipeline_class)
print({c.name: c.status for c in report.components})'''),
        md("## A component missing\n\nA download that stopped before the VAE, or a folder copied without it:"),
        code('''\
# NBVAL_IGNORE_OUTPUT
missing = copy_model(healthy, work / "missing")
remove_component(missing, "vae")
%wan_analyze $missing'''),
        code('''\
report = analyze_model_components(missing)
print(report.ok, report["vae"].status)
print(*report.all_problems, sep="\\n")'''),
        md("## Corrupt weights\n\nThe transformer's weight file cut short, as an interrupted download leaves it:"),
        code('''\
# NBVAL_IGNORE_OUTPUT
corrupt = copy_model(healthy, work / "corrupt")
truncate_weights(corrupt, "transformer")
%wan_analyze $corrupt'''),
        code('''\
report = analyze_model_components(corrupt)
print(report.ok, report["transformer"].status)'''),
        md("""
## A pipeline class the installed diffusers does not have

A folder saved by a newer diffusers (or a fork) names a class this installation lacks; the
analysis says so, and the next steps name what to upgrade:
"""),
        code('''\
# NBVAL_IGNORE_OUTPUT
unknown = copy_model(healthy, work / "unknown")
set_pipeline_class(unknown, "WanFuturePipeline")
%wan_analyze $unknown'''),
        code('''\
report = analyze_model_components(unknown)
print(report.ok, report.pipeline_class, report.pipeline_importable)'''),
        md("""
## A full-size Wan 2.2 T2V A14B, analysed in milliseconds

A synthetic checkpoint laid out exactly like `Wan-AI/Wan2.2-T2V-A14B-Diffusers`: the real
configs and real safetensors headers over sparse files — tens of GB apparent, kilobytes on
disk. The analysis reads the headers only, so it takes the same time as on a real download.
"""),
        code('''\
# NBVAL_IGNORE_OUTPUT
a14b = write_synthetic_checkpoint(work / "Wan2.2-T2V-A14B-Diffusers", "wan2.2-t2v-a14b")
files = [f for f in a14b.rglob("*.safetensors")]
print(f"{len(files)} weight files, {format_bytes(sum(f.stat().st_size for f in files))} apparent, "
      f"{format_bytes(sum(f.stat().st_blocks * 512 for f in files))} on disk")
analyze_model_components(a14b)  # the first call imports diffusers to check the classes
start = time.perf_counter()
big = analyze_model_components(a14b)
print(f"analysed in {1000 * (time.perf_counter() - start):.0f} ms")
big'''),
        code('''\
print(big.pipeline_class, big.ok)
for c in big.components:
    if c.parameters:
        print(f"{c.name:<14} {c.parameters:>15,} parameters  {format_bytes(c.bytes):>10}  {','.join(c.dtypes)}")
print(f"total {big.total_parameters:,} parameters, {format_bytes(big.total_bytes)}")'''),
    ]


# -- 03 ----------------------------------------------------------------------------------------------
def vram_profiling():
    return [
        md("""
# VRAM profiling: every strategy that fits, estimated and measured

`%wan_recover --explore` does not stop at the first strategy that works: it tries every one
predicted to fit and measures each, so their peaks (total and per stage) can be compared with
what was predicted. The second half predicts the real, full-size presets at 480p and 720p.
"""),
        code(COLAB),
        code(SETUP),
        code(TINY),
        code(FAIL),
        md("## The plan, before running anything\n\n`--dry-run` shows what would be tried, in what order, with the estimate for each and why the others are left out:"),
        code("# NBVAL_IGNORE_OUTPUT\nplan = %wan_recover --dry-run --budget 16MB\nplan"),
        code('''\
print("would try:", [c.strategy for c in plan.planned])
print("fits:", {c.strategy: c.fit for c in plan.planned})'''),
        md("## Explore: try each, measure each"),
        code("# NBVAL_IGNORE_OUTPUT\n%wan_recover --explore --budget 16MB"),
        code('''\
report = _wan_report
print("tried:", [(a.strategy, a.status) for a in report.attempts])
print("winner:", report.winner, "| video:", video.shape)'''),
        md("Estimated against measured, per strategy (bytes of live tensor memory; on a GPU, `torch.cuda.max_memory_allocated`):"),
        code('''\
# NBVAL_IGNORE_OUTPUT
frame = report.to_frame()[["strategy", "status", "estimated_peak_bytes", "measured_peak_bytes", "seconds"]]
frame["error"] = (frame["measured_peak_bytes"] - frame["estimated_peak_bytes"]) / frame["measured_peak_bytes"]
readable(frame, "error: (measured - estimated) / measured")  # sizes in MiB, no NaN'''),
        code('''\
worst = frame["error"].abs().max()
print("every estimate within 25% of the measurement:", bool(worst < 0.25))'''),
        code("# NBVAL_IGNORE_OUTPUT\nreport.plot()"),
        md("""
## The real presets at 480p and 720p

The same estimator on synthetic checkpoints of the published models (real configs and
headers, sparse files). For comparison, the Wan authors report 41.3 GB (480p) and 59.8 GB
(720p) for Wan2.2 T2V A14B on one GPU with their own code, and diffusers' docs about 13 GB
for Wan2.1 14B with group offloading.
"""),
        code('''\
# NBVAL_IGNORE_OUTPUT
import tempfile
from pathlib import Path

import pandas as pd

from wan_nb import analyze_model_components
from wan_nb.fixtures import write_synthetic_checkpoint
from wan_nb.memory import estimate_memory
from wan_nb.settings import GenerationSettings

work = Path(tempfile.mkdtemp(prefix="wan_nb_presets_"))
presets = ["wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.2-ti2v-5b", "wan2.2-t2v-a14b"]
reports = {p: analyze_model_components(write_synthetic_checkpoint(work / p, p)) for p in presets}
sizes = {"480p": (480, 832), "720p": (704, 1280)}  # TI2V's 16x VAE needs multiples of 32
strategies = [None, "vae_tiling", "model_cpu_offload+vae_tiling", "group_offload+vae_tiling"]
rows = []
for preset, rep in reports.items():
    for label, (h, w) in sizes.items():
        settings = GenerationSettings(height=h, width=w, num_frames=81, num_inference_steps=40, dtype="bfloat16")
        for strategy in strategies:
            est = estimate_memory(rep, settings, strategy)
            rows.append({"preset": preset, "size": label, "strategy": strategy or "as is",
                         "GiB": round(est.peak_bytes / 2**30, 1), "peak stage": est.peak_stage})
table = pd.DataFrame(rows).pivot_table(index=["preset", "size"], columns="strategy", values="GiB", sort=False)
readable(table, "Estimated peak in GiB, 81 frames, 40 steps, bfloat16, by strategy")'''),
        code('''\
print("720p never needs less than 480p:",
      all(table.xs("720p", level="size")[s].ge(table.xs("480p", level="size")[s]).all() for s in table.columns))
print("offloading + tiling is the lightest:",
      bool((table[["model_cpu_offload+vae_tiling", "group_offload+vae_tiling"]].min(axis=1) <= table["as is"]).all()))'''),
        md("`%wan_estimate` makes the same comparison for one model, as a table and a plot, with a budget line:"),
        code('''\
# NBVAL_IGNORE_OUTPUT
a14b = work / "wan2.2-t2v-a14b"
%wan_estimate $a14b --height 720 --width 1280 --frames 81 --steps 40 --budget 24GiB'''),
    ]


# -- 04 ----------------------------------------------------------------------------------------------
def how_fallbacks_work():
    return [
        md("""
# How the fallbacks work

Each strategy in wan_nb's catalogue changes one thing about how the pipeline runs. This
notebook applies each one that can run on this machine to the same failing cell and measures
what it changed, then shows what the ones that need a GPU would save on a full-size model.
"""),
        code(COLAB),
        code(SETUP + '''

import pandas as pd

from wan_nb.strategies import STRATEGIES'''),
        md("## The catalogue"),
        code('''\
catalogue = pd.DataFrame([{
    "strategy": s.name, "kind": s.kind, "what it does": s.summary, "output": s.quality,
    "slowdown": s.slowdown, "needs a GPU": s.needs_accelerator, "fresh load": s.fresh_load,
} for s in STRATEGIES.values()]).set_index("strategy")
readable(catalogue)  # pandas' own view would cut "what it does" at 50 characters'''),
        md("## One failing cell, every strategy that runs on a CPU\n\nThe same tiny Wan 2.2 pipeline and 16 MB device as in the quickstart:"),
        code(TINY),
        code(FAIL),
        md("""
`--force` tries exactly the strategies listed, in order, even those the plan would leave out
(predicted not to fit, or no effect), and `--explore` goes on after the first success, so
each is measured. `--allow-degraded` lets the two that change the video run.
"""),
        code('''\
# NBVAL_IGNORE_OUTPUT
%wan_recover --budget 16MB --force --explore --allow-degraded --strategies vae_tiling,vae_slicing,half_precision,fewer_frames,lower_resolution'''),
        code('''\
report = _wan_report
effects = pd.DataFrame([{
    "strategy": a.strategy, "status": a.status,
    "measured peak (MiB)": round(a.measured_peak_bytes / 2**20, 2) if a.measured_peak_bytes else None,
    "changes": ", ".join(f"{k}={v}" for k, v in a.changes.items()),
} for a in report.attempts]).set_index("strategy")
print(effects["status"].to_string())
print("lower_resolution made a smaller video:", bool(report.attempts[-1].changes))'''),
        code("# NBVAL_IGNORE_OUTPUT\nreadable(effects)"),
        md("""
How to read the table (each row is the same cell, rerun under one strategy, on the same 16 MB device):

- **vae_tiling** decodes the video in overlapping tiles: only the decode's peak falls, so it
  fits, and the video is the same.
- **vae_slicing** decodes the videos of a batch one at a time: with one video it changes
  nothing and fails as the cell did. The plan leaves it out for that reason; `--force` ran it.
- **half_precision** loads a 16-bit copy of the models (and **layerwise_fp8**, not run here,
  a copy whose transformer weights are stored in float8 and upcast layer by layer). On a GPU
  the original pipeline waits on the CPU meanwhile; on a CPU both copies share the one memory,
  which is why it does not fit here — and why the plan, which knows it, predicted so.
- **fewer_frames** cannot go below 5 frames (the Wan VAE makes 4k+1), so it changes nothing;
  **lower_resolution** makes a smaller video that fits. Both change the output: they run only
  with `--allow-degraded`, and the plan puts them last.
"""),
        code("# NBVAL_IGNORE_OUTPUT\nplot_stages(report)  # peak per stage, measured, for each attempt"),
        md("""
## The strategies that need a GPU, on a full-size model

Offloading keeps models (or blocks, or layers) on the CPU and moves them to the GPU only
while they run; quantization stores weights in 8 or 4 bits. Their effect on Wan2.1 T2V 14B at
480p, 81 frames, as predicted from the checkpoint's headers:
"""),
        code('''\
# NBVAL_IGNORE_OUTPUT
import tempfile
from pathlib import Path

from wan_nb import analyze_model_components
from wan_nb.fixtures import write_synthetic_checkpoint
from wan_nb.notebook import plot_estimates
from wan_nb.memory import estimate_memory
from wan_nb.settings import GenerationSettings

big = analyze_model_components(write_synthetic_checkpoint(Path(tempfile.mkdtemp()) / "14b", "wan2.1-t2v-14b"))
settings = GenerationSettings(height=480, width=832, num_frames=81, num_inference_steps=40)
names = [None, "model_cpu_offload", "group_offload", "sequential_cpu_offload", "text_encoder_cpu", "quantize_int8",
         "quantize_nf4", "model_cpu_offload+vae_tiling", "group_offload+vae_tiling"]
gpu = {name or "as is": estimate_memory(big, settings, name) for name in names}
plot_estimates(gpu, budget="16GiB")'''),
        code('''\
as_is = gpu["as is"].peak_bytes
print("every GPU strategy predicts less than as it is:", all(e.peak_bytes < as_is for k, e in gpu.items() if k != "as is"))
print("lightest:", min(gpu, key=lambda k: gpu[k].peak_bytes))'''),
    ]


NOTEBOOKS = {
    "01": ("01_quickstart.ipynb", quickstart),
    "02": ("02_component_analysis.ipynb", component_analysis),
    "03": ("03_vram_profiling.ipynb", vram_profiling),
    "04": ("04_how_fallbacks_work.ipynb", how_fallbacks_work),
}


def build(key: str, execute: bool = True) -> float:
    name, cells = NOTEBOOKS[key]
    nb = nbformat.v4.new_notebook()
    nb.cells = cells()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"{key}-{i:02d}"  # stable ids: a rebuild changes only what changed
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(RAISES):
            cell.metadata["tags"] = ["raises-exception"]  # Jupyter's, nbclient's and nbval's marker
    start = time.perf_counter()
    if execute:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, HERE / name)
    return seconds


def main(argv: list[str]) -> int:
    os.environ["WAN_NB_NO_WIDGETS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as notebooks/conftest.py sets it for nbval
    os.environ.setdefault("WAN_NB_FIXTURE_CACHE", str(Path(tempfile.gettempdir()) / "wan_nb_notebook_fixtures"))
    for key in argv or list(NOTEBOOKS):
        print(f"{NOTEBOOKS[key][0]}: {build(key):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
