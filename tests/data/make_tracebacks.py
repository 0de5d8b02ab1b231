"""Capture real tracebacks for the diagnose corpus: cause each failure for real, save its text.

    .venv/bin/python tests/data/make_tracebacks.py [NAME ...]   # a few minutes on a CPU

Each case breaks a tiny real Wan pipeline (``wan_nb.fixtures``) or runs it under a memory
budget (``wan_nb.memory.budget``), catches what diffusers / torch / transformers raise and
writes ``tests/data/tracebacks/captured/<name>.txt``: a label header, then the traceback as
Python prints it (``traceback.format_exc()``) or, for the ``ipython`` cases, as a Jupyter
cell shows it (IPython's own formatter, colours off). Temporary paths are replaced by
stable ones so that a rerun changes only what the libraries changed.

The labels are the author's judgement of each failure, written before looking at what
``wan_nb.diagnosis.core`` says; ``tests/test_diagnose.py`` checks diagnose against them.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import re
import shutil
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent / "tracebacks" / "captured"


@dataclass
class Case:
    name: str
    category: str
    stage: str
    component: str | None
    source: str
    run: Callable[[Path], None]  # raises the failure; gets a scratch folder
    ipython: str | None = None  # cell code instead of ``run`` (run sets up its namespace)


CASES: list[Case] = []


def case(name: str, category: str, stage: str, component: str | None, source: str, ipython: str | None = None):
    def register(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        CASES.append(Case(name, category, stage, component, source, fn, ipython))
        return fn

    return register


# --- helpers ----------------------------------------------------------------------------------


def tiny(variant: str = "wan2.1-t2v"):
    """A fresh pipeline per call would cost seconds each; cases that break one get their own."""
    from wan_nb.fixtures import load_tiny_pipeline

    pipe = load_tiny_pipeline(variant)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def broken_copy(scratch: Path, name: str) -> Path:
    from wan_nb.fixtures import copy_model, tiny_pipeline_path

    return copy_model(tiny_pipeline_path(), scratch / name)


def kwargs(**overrides):
    from wan_nb.fixtures import tiny_call_kwargs

    return tiny_call_kwargs(**overrides)


# --- cases: loading ------------------------------------------------------------------------------

@case("cap_bad_pipeline_class", "pipeline_unavailable", "load", None,
      "captured: tiny wan2.1 pipeline, model_index.json `_class_name` set to a class diffusers lacks")
def _bad_class(scratch: Path) -> None:
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import set_pipeline_class

    path = broken_copy(scratch, "bad_class")
    set_pipeline_class(path, "WanVideoPipelineXL")
    DiffusionPipeline.from_pretrained(path)


@case("cap_missing_transformer_folder", "component_missing", "load", None,
      "captured: tiny wan2.1 pipeline with its transformer folder deleted (diffusers names the model root, "
      "not the component)")
def _missing_component(scratch: Path) -> None:
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import remove_component

    path = broken_copy(scratch, "no_transformer")
    remove_component(path, "transformer")
    DiffusionPipeline.from_pretrained(path)


@case("cap_missing_vae_config", "component_missing", "load", "vae",
      "captured: tiny wan2.1 pipeline with vae/config.json deleted")
def _missing_config(scratch: Path) -> None:
    from diffusers import WanPipeline

    from wan_nb.fixtures import remove_config

    path = broken_copy(scratch, "no_vae_config")
    remove_config(path, "vae")
    WanPipeline.from_pretrained(path)


@case("cap_empty_folder", "component_missing", "load", None,
      "captured: DiffusionPipeline.from_pretrained on an empty folder (no model_index.json)")
def _empty(scratch: Path) -> None:
    from diffusers import DiffusionPipeline

    empty = scratch / "empty_model"
    empty.mkdir()
    DiffusionPipeline.from_pretrained(empty)


@case("cap_truncated_transformer", "weights_corrupt", "load", "transformer",
      "captured: tiny wan2.1 pipeline, transformer safetensors cut short (an interrupted download)")
def _truncated(scratch: Path) -> None:
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import truncate_weights

    path = broken_copy(scratch, "truncated")
    truncate_weights(path, "transformer")
    DiffusionPipeline.from_pretrained(path)


@case("cap_header_too_large_vae", "weights_corrupt", "load", "vae",
      "captured: AutoencoderKLWan.from_pretrained on a vae whose safetensors header length is absurd "
      "(what an HTML page saved as .safetensors gives)")
def _header(scratch: Path) -> None:
    from diffusers import AutoencoderKLWan

    from wan_nb.fixtures import corrupt_header

    path = broken_copy(scratch, "bad_header")
    corrupt_header(path, "vae", kind="huge_length")
    AutoencoderKLWan.from_pretrained(path, subfolder="vae")


@case("cap_git_lfs_pointer", "weights_corrupt", "load", None,
      "captured: tiny pipeline whose vae weights are a git-lfs pointer file (a clone without git-lfs)")
def _lfs(scratch: Path) -> None:
    from diffusers import DiffusionPipeline

    path = broken_copy(scratch, "lfs_pointer")
    weights = path / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_text("version https://git-lfs.github.com/spec/v1\n"
                       "oid sha256:5f0c3a8e1d2b4c6a7e9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e\nsize 507591892\n")
    DiffusionPipeline.from_pretrained(path)


@case("cap_vae22_weights_in_21_config", "version_mismatch", "load", "vae",
      "captured: a Wan 2.2 TI2V VAE's weights under a Wan 2.1 VAE config (what an old diffusers that "
      "ignores the 2.2 config keys meets)")
def _vae_mismatch(scratch: Path) -> None:
    from diffusers import AutoencoderKLWan

    from wan_nb.fixtures import copy_model, tiny_pipeline_path

    ti2v = copy_model(tiny_pipeline_path("wan2.2-ti2v-5b"), scratch / "ti2v")
    shutil.copy(tiny_pipeline_path("wan2.1-t2v") / "vae" / "config.json", ti2v / "vae" / "config.json")
    AutoencoderKLWan.from_pretrained(ti2v, subfolder="vae")


# --- cases: running ------------------------------------------------------------------------------

_STAGE_ORDER = ("text_encode", "vae_encode", "denoise", "vae_decode")
_STAGE_MARKS = {
    "text_encode": re.compile(r"_get_t5_prompt_embeds|encode_prompt"),
    "vae_encode": re.compile(r"autoencoder_kl_wan\.py.*\b_encode\b"),
    "denoise": re.compile(r"transformer_wan\.py"),
    "vae_decode": re.compile(r"autoencoder_kl_wan\.py.*\b_decode\b"),
}


def _failed_at(text: str | None) -> int:
    """How far the run got: the index in _STAGE_ORDER of the stage its traceback shows."""
    if text is None:
        return len(_STAGE_ORDER)  # it ran to the end
    reached = [i for i, stage in enumerate(_STAGE_ORDER) if _STAGE_MARKS[stage].search(text)]
    return max(reached) if reached else -1


def _run_budget(pipe, call: dict, budget: int) -> str | None:
    from wan_nb.memory.budget import memory_budget

    try:
        with memory_budget(budget):
            pipe(**call)
    except Exception:  # noqa: BLE001 - any failure of the case is the traceback we capture
        return traceback.format_exc()
    return None


def budget_failing_in(pipe, call_factory, stage: str) -> int:
    """The smallest budget (128 KiB steps) whose OOM comes in ``stage`` or later.

    The tiny models' sizes change as the fixtures evolve, so a fixed budget would drift from
    one stage to another; the later a run fails, the more memory it was given, so a
    bisection finds the edge. The stage is read from the traceback's own frames.
    """
    want = _STAGE_ORDER.index(stage)
    step = 128 * 1024
    lo, hi = 0, 512  # in steps: 0 .. 64 MiB
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _failed_at(_run_budget(pipe, call_factory(), mid * step)) >= want:
            hi = mid
        else:
            lo = mid
    if _failed_at(_run_budget(pipe, call_factory(), hi * step)) != want:
        raise AssertionError(f"no budget makes the run fail in {stage}: it needs less there than before")
    return hi * step


def _oom_in(pipe, call_factory, stage: str) -> None:
    from wan_nb.memory.budget import memory_budget

    budget = budget_failing_in(pipe, call_factory, stage)
    with memory_budget(budget):
        pipe(**call_factory())


@case("cap_oom_budget_vae_decode", "out_of_memory", "vae_decode", "vae",
      "captured: tiny wan2.1 pipeline at 64x64x9 under wan_nb.memory_budget, the budget set so that it runs out in "
      "the VAE decode")
def _oom_decode(scratch: Path) -> None:
    pipe = tiny()
    _oom_in(pipe, lambda: kwargs(height=64, width=64, num_frames=9), "vae_decode")


@case("cap_oom_budget_text_encode", "out_of_memory", "text_encode", "tokenizer",
      "captured: tiny wan2.1 pipeline under the smallest budget; transformers wraps the OOM raised while the "
      "tokenizer builds tensors in a ValueError")
def _oom_text(scratch: Path) -> None:
    pipe = tiny()
    _oom_in(pipe, kwargs, "text_encode")


@case("cap_dtype_transformer_partial_cast", "dtype_mismatch", "denoise", "transformer",
      "captured: tiny wan2.1 pipeline with only the transformer's proj_out cast to bfloat16 (a half-applied cast)")
def _dtype_transformer(scratch: Path) -> None:
    import torch

    pipe = tiny()
    pipe.transformer.proj_out.to(torch.bfloat16)
    pipe(**kwargs())


@case("cap_device_meta_transformer", "device_mismatch", "denoise", "transformer",
      "captured: tiny wan2.1 pipeline with one transformer layer left on the meta device (no CUDA here: "
      "meta vs cpu is the real device mismatch a CPU can raise)")
def _device_meta(scratch: Path) -> None:
    pipe = tiny()
    pipe.transformer.proj_out.to("meta")
    pipe(**kwargs())


@case("cap_guidance_scale_2_on_wan21", "invalid_input", "unknown", None,
      "captured: `guidance_scale_2` passed to a Wan 2.1 pipeline (no boundary_ratio); check_inputs rejects it")
def _gs2(scratch: Path) -> None:
    pipe = tiny()
    pipe(**kwargs(guidance_scale_2=3.0))


@case("cap_unexpected_kwarg_library", "version_mismatch", "unknown", None,
      "captured: a keyword the installed WanPipeline.__call__ does not have (as a newer release's argument "
      "meets an older diffusers)")
def _kwarg(scratch: Path) -> None:
    pipe = tiny()
    pipe(**kwargs(guidance_scale_3=2.0))


def _i2v_kwargs(pipe, **overrides):
    """I2V settings with prompt embeddings given: diffusers' I2V prompt cleaning needs ftfy."""
    import torch

    from wan_nb.fixtures import tiny_call_kwargs

    call = tiny_call_kwargs("wan2.1-i2v", prompt=None, negative_prompt=None, **overrides)
    dim = pipe.text_encoder.config.d_model
    generator = torch.Generator().manual_seed(1)
    call["prompt_embeds"] = torch.randn(1, 32, dim, generator=generator)
    call["negative_prompt_embeds"] = torch.randn(1, 32, dim, generator=generator)
    return call


@case("cap_i2v_ftfy_nameerror", "missing_dependency", "text_encode", "text_encoder",
      "captured: tiny wan2.1 i2v pipeline without ftfy installed; diffusers' pipeline_wan_i2v.py calls "
      "ftfy.fix_text unguarded while cleaning the prompt")
def _i2v_ftfy(scratch: Path) -> None:
    from wan_nb.fixtures import tiny_call_kwargs

    pipe = tiny("wan2.1-i2v")
    pipe(**tiny_call_kwargs("wan2.1-i2v"))


@case("cap_oom_budget_vae_encode_i2v", "out_of_memory", "vae_encode", "vae",
      "captured: tiny wan2.1 i2v pipeline at 128x128x9 under wan_nb.memory_budget, set so that it runs out while "
      "the VAE encodes the conditioning image")
def _oom_encode(scratch: Path) -> None:
    pipe = tiny("wan2.1-i2v")
    _oom_in(pipe, lambda: _i2v_kwargs(pipe, height=128, width=128, num_frames=9), "vae_encode")


# --- cases: in a notebook cell (IPython's traceback format) --------------------------------------

def _ns_pipe(scratch: Path) -> dict:
    return {"pipe": tiny(), "kwargs": kwargs(), "tiny_call_kwargs": kwargs}


@case("cap_ipy_dtype_vae_partial_cast", "dtype_mismatch", "vae_decode", "vae",
      "captured (IPython cell): tiny wan2.1 pipeline, the VAE decoder's conv_out alone cast to bfloat16",
      ipython="import torch\npipe.vae.decoder.conv_out.to(torch.bfloat16)\nvideo = pipe(**kwargs).frames[0]\n")
def _ipy_dtype(scratch: Path) -> dict:
    return _ns_pipe(scratch)


@case("cap_ipy_oom_budget_denoise", "out_of_memory", "denoise", "transformer",
      "captured (IPython cell): tiny wan2.1 pipeline at 64x64x9 under wan_nb.memory_budget, set so that it runs out "
      "in the transformer",
      ipython="from wan_nb.memory.budget import memory_budget\nwith memory_budget(budget):\n"
              "    video = pipe(**tiny_call_kwargs(height=64, width=64, num_frames=9)).frames[0]\n")
def _ipy_oom(scratch: Path) -> dict:
    namespace = _ns_pipe(scratch)
    pipe = namespace["pipe"]
    namespace["budget"] = budget_failing_in(pipe, lambda: kwargs(height=64, width=64, num_frames=9), "denoise")
    return namespace


@case("cap_ipy_invalid_height", "invalid_input", "unknown", None,
      "captured (IPython cell): height 40 is not a multiple of 16; check_inputs raises",
      ipython="video = pipe(**tiny_call_kwargs(height=40)).frames[0]\n")
def _ipy_height(scratch: Path) -> dict:
    return _ns_pipe(scratch)


@case("cap_ipy_offload_no_accelerator", "accelerator_unavailable", "to_device", None,
      "captured (IPython cell): enable_model_cpu_offload() on a machine without an accelerator",
      ipython="pipe.enable_model_cpu_offload()\n")
def _ipy_offload(scratch: Path) -> dict:
    return _ns_pipe(scratch)


@case("cap_ipy_to_cuda_cpu_torch", "accelerator_unavailable", "to_device", None,
      "captured (IPython cell): pipe.to('cuda') with a CPU-only torch build",
      ipython="pipe.to('cuda')\n")
def _ipy_cuda(scratch: Path) -> dict:
    return _ns_pipe(scratch)


@case("cap_ipy_import_ftfy", "missing_dependency", "load", None,
      "captured (IPython cell): `import ftfy` where ftfy is not installed",
      ipython="import ftfy\n")
def _ipy_ftfy(scratch: Path) -> dict:
    return {}


@case("cap_ipy_export_without_video_backend", "missing_dependency", "postprocess", None,
      "captured (IPython cell): diffusers' export_to_video with neither imageio nor OpenCV installed",
      ipython="from diffusers.utils import export_to_video\nimport numpy as np\n"
              "frames = [np.zeros((32, 32, 3), dtype=np.float32)] * 5\nexport_to_video(frames, 'out.mp4', fps=16)\n")
def _ipy_export(scratch: Path) -> dict:
    return {}


@case("cap_ipy_host_allocation_refused", "host_out_of_memory", "unknown", None,
      "captured (IPython cell): a 1 TiB CPU tensor; the host allocator refuses it (DefaultCPUAllocator)",
      ipython="import torch\nbuffer = torch.empty(2**40, dtype=torch.uint8)\n")
def _ipy_host(scratch: Path) -> dict:
    return {}


@case("cap_ipy_user_nameerror", "user_code", "unknown", None,
      "captured (IPython cell): a misspelt variable name in the cell that calls the pipeline",
      ipython="video = pipee(**kwargs).frames[0]\n")
def _ipy_user(scratch: Path) -> dict:
    return _ns_pipe(scratch)


# --- capture -------------------------------------------------------------------------------------

def _shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("colors", "nocolor")
    return shell


def _run_cell(shell, namespace: dict, code: str) -> str:
    from IPython.utils.capture import capture_output

    # The previous cell's traceback (sys.last_traceback, Out history) keeps its pipeline alive,
    # which a memory budget would count: start each case from a clean shell.
    shell.reset(new_session=False)
    sys.last_type = sys.last_value = sys.last_traceback = None
    gc.collect()
    shell.user_ns.update(namespace)
    with capture_output() as captured:
        shell.run_cell(code)
    return captured.stdout


def _stable(text: str, scratch: Path) -> str:
    text = text.replace(str(scratch), "/tmp/wan_nb_capture")
    text = re.sub(r"/tmp/wan_nb_fixtures_\w+", "/tmp/wan_nb_fixtures", text)
    text = re.sub(r"(wan2\.[12][\w.-]*-size\d+)-[0-9a-f]{10}", r"\1", text)
    return text.replace(str(ROOT), "/work/wan_nb")


def capture(case_: Case, scratch: Path, shell=None) -> str:
    if case_.ipython is not None:
        namespace = case_.run(scratch) or {}
        return _run_cell(shell, namespace, case_.ipython)
    try:
        case_.run(scratch)
    except Exception:  # noqa: BLE001 - any failure of the case is the traceback we capture
        return traceback.format_exc()
    raise AssertionError(f"{case_.name}: the failure did not happen")


def main(names: list[str]) -> None:
    logging.disable(logging.WARNING)  # diffusers' loading chatter is not part of the tracebacks
    warnings.simplefilter("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    shell = _shell()
    scratch = Path(tempfile.mkdtemp(prefix="wan_nb_capture_"))
    try:
        for case_ in CASES:
            if names and case_.name not in names:
                continue
            # The CPU budget counts every live tensor: drop what earlier cases left in cycles.
            gc.collect()
            with contextlib.redirect_stderr(io.StringIO()):
                text = capture(case_, scratch, shell)
            if "Traceback" not in text and "Error" not in text:
                raise AssertionError(f"{case_.name}: nothing was raised:\n{text}")
            header = [f"# category: {case_.category}", f"# stage: {case_.stage}"]
            if case_.component:
                header.append(f"# component: {case_.component}")
            header.append(f"# source: {case_.source}")
            body = _stable(text, scratch).rstrip() + "\n"
            (OUT / f"{case_.name}.txt").write_text("\n".join(header) + "\n" + body, encoding="utf-8")
            print(f"wrote {case_.name}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"captured": len(list(OUT.glob("*.txt")))}))


if __name__ == "__main__":
    main(sys.argv[1:])
