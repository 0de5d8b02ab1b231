"""The structural strategies: another way to build the pipeline, or what to do by hand.

``generic_pipeline``, ``assemble_components`` and ``remote_code`` (kind
``pipeline_substitution``) answer a pipeline class the installed diffusers lacks or cannot
load as the checkpoint needs; ``component_donor`` (``component_isolation``) takes a missing
or damaged component from another local model. During an attempt the run's own
``from_pretrained(path)`` returns the pipeline they build (see :mod:`wan_nb.recovery.engine`).
``upgrade_library``, ``redownload`` and ``alternative_model`` are guidance only: the plan
lists them, skipped, with the command or suggestion; wan_nb never installs or downloads.
"""

from __future__ import annotations

import json
from typing import Any

from wan_nb.strategies._base import Strategy, StrategyContext

_SUBSTITUTION = ("pipeline_unavailable", "version_mismatch")
_BROKEN = ("component_missing", "weights_corrupt")
GUIDANCE_PREFIX = "guidance only, wan_nb never installs or downloads: "


def _path_src(path: str | None, ctx: StrategyContext | None = None) -> str:
    """The folder as the user's own load wrote it (their variable), else the path itself."""
    if ctx is not None and ctx.call is not None and ctx.call.load_path:
        return ctx.call.load_path
    return json.dumps(str(path)) if path else '"path/to/model"'


def _dtype_src(ctx: StrategyContext, diffusers: bool = False) -> str:
    """The precision argument: diffusers' own name for ``from_pretrained``, ``torch_dtype`` for wan_nb's."""
    if ctx.dtype and ctx.dtype != "float32":
        from wan_nb.libraries import dtype_kwarg_name

        return f", {dtype_kwarg_name() if diffusers else 'torch_dtype'}=torch.{ctx.dtype}"
    return ""


def _tail(ctx: StrategyContext, pipe_var: str) -> list[str]:
    lines = []
    if ctx.device != "cpu":
        lines.append(f"{pipe_var}.to({ctx.device!r})")
    if ctx.call is not None:
        lines.append(ctx.call.call_line(pipe_var, {}))
    else:
        # No call was seen (a load that failed): the call is the user's to write.
        lines.append(f"# video = {pipe_var}(prompt=..., ...).frames[0]")
    return lines


def _head(name: str, summary: str, ctx: StrategyContext, imports: list[str]) -> list[str]:
    lines = [f"# wan_nb strategy `{name}`: {summary}", ""]
    if _dtype_src(ctx):
        lines.append("import torch")
    return lines + imports + [""]


# -- the loaders (called during an attempt in place of from_pretrained) -------------------------
def _generic_load(path: str, torch_dtype: Any, ctx: StrategyContext) -> Any:
    from wan_nb.repair.assemble import generic_pipeline

    return generic_pipeline(path, torch_dtype=torch_dtype)


def _assemble_load(path: str, torch_dtype: Any, ctx: StrategyContext) -> Any:
    from wan_nb.repair.assemble import assemble_components

    return assemble_components(path, torch_dtype=torch_dtype, allow_remote_code=ctx.allow_remote_code)


def _remote_load(path: str, torch_dtype: Any, ctx: StrategyContext) -> Any:
    from wan_nb.repair.remote_code import load_with_remote_code

    return load_with_remote_code(path, allow_remote_code=ctx.allow_remote_code, torch_dtype=torch_dtype)


def donor_search_dirs(ctx_or_dir: Any) -> list[str] | None:
    models_dir = getattr(ctx_or_dir, "models_dir", ctx_or_dir)
    return [str(models_dir)] if models_dir else None


def _donor_load(path: str, torch_dtype: Any, ctx: StrategyContext) -> Any:
    from wan_nb.repair.donors import assemble_with_donors

    return assemble_with_donors(path, donor_search_dirs(ctx), torch_dtype=torch_dtype)[0]


# -- the snippets ---------------------------------------------------------------------------------
def _generic_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    lines = _head("generic_pipeline", GENERIC.summary, ctx, ["from diffusers import DiffusionPipeline"])
    lines.append(f"{pipe_var} = DiffusionPipeline.from_pretrained({_path_src(path, ctx)}{_dtype_src(ctx, True)})")
    return "\n".join(lines + _tail(ctx, pipe_var)) + "\n"


def _assemble_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    lines = _head("assemble_components", ASSEMBLE.summary, ctx,
                  ["from wan_nb.repair.assemble import assemble_components"])
    lines.append(f"{pipe_var} = assemble_components({_path_src(path, ctx)}{_dtype_src(ctx)})")
    return "\n".join(lines + _tail(ctx, pipe_var)) + "\n"


def _remote_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    lines = _head("remote_code", REMOTE.summary, ctx, ["from diffusers import DiffusionPipeline"])
    lines.insert(1, "# Runs the Python files in the model folder: read them first.")
    lines.append(f"{pipe_var} = DiffusionPipeline.from_pretrained({_path_src(path, ctx)}, trust_remote_code=True"
                 f"{_dtype_src(ctx, True)})")
    return "\n".join(lines + _tail(ctx, pipe_var)) + "\n"


def _donor_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    lines = _head("component_donor", DONOR.summary, ctx, ["from wan_nb.repair.donors import assemble_with_donors"])
    dirs = f"[{json.dumps(str(ctx.models_dir))}]" if ctx.models_dir else "None"
    lines.append(f"{pipe_var}, donors = assemble_with_donors({_path_src(path, ctx)}, {dirs}{_dtype_src(ctx)})")
    return "\n".join(lines + _tail(ctx, pipe_var)) + "\n"


def _upgrade_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    version = ctx.changes.get("min_diffusers") if ctx.changes else None
    spec = f"diffusers>={version}" if version else "diffusers"
    return (f"# wan_nb strategy `upgrade_library`: {UPGRADE.summary}\n"
            "# Guidance only (wan_nb never installs): run this, then restart the kernel.\n"
            f'#   pip install -U "{spec}"\n'
            "# In a notebook cell: %pip install -U \"" + spec + "\"\n")


def _redownload_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    where = f" --local-dir {json.dumps(str(path))}" if path else ""
    return (f"# wan_nb strategy `redownload`: {REDOWNLOAD.summary}\n"
            "# Guidance only (wan_nb never downloads); the plan names the files and the repository.\n"
            f"#   hf download <repo-id> --include '<component>/*'{where} --force-download\n")


def _alternative_script(ctx: StrategyContext, path: str | None, pipe_var: str) -> str:
    return (f"# wan_nb strategy `alternative_model`: {ALTERNATIVE.summary}\n"
            "from wan_nb.alternatives import load_registry\n\n"
            "[m.repo_id for m in load_registry()]\n")


GENERIC = Strategy(
    name="generic_pipeline", kind="pipeline_substitution",
    summary="load with DiffusionPipeline, the class model_index.json names",
    answers=_SUBSTITUTION, stages=("load",),
    limitations="Works only when the installed diffusers has that class and can load it as the checkpoint needs.",
    cost_rank=0, _assemble=_generic_load, _script=_generic_script,
)
ASSEMBLE = Strategy(
    name="assemble_components", kind="pipeline_substitution",
    summary="load each component with its own class and build the installed pipeline that fits them",
    answers=_SUBSTITUTION, stages=("load",),
    limitations="The installed pipeline class may lack features of the one the folder names.",
    cost_rank=1, _assemble=_assemble_load, _script=_assemble_script,
)
REMOTE = Strategy(
    name="remote_code", kind="pipeline_substitution",
    summary="run the pipeline code the model folder ships (trust_remote_code)",
    answers=_SUBSTITUTION, stages=("load",),
    limitations="Runs code from the model folder: only with your consent (allow_remote_code=True).",
    cost_rank=2, _assemble=_remote_load, _script=_remote_script,
)
DONOR = Strategy(
    name="component_donor", kind="component_isolation",
    summary="take the missing or damaged component from another local model with the same config",
    answers=_BROKEN, stages=("load",),
    limitations="Needs a compatible model on this machine (models_dir, the model's sibling folders, the HF cache).",
    cost_rank=3, _assemble=_donor_load, _script=_donor_script,
)
UPGRADE = Strategy(
    name="upgrade_library", kind="pipeline_substitution",
    summary="install a diffusers release that has the pipeline class",
    answers=_SUBSTITUTION, stages=("load",),
    limitations="Guidance only: wan_nb never installs packages; restart the kernel afterwards.",
    cost_rank=10, guidance=True, _script=_upgrade_script,
)
REDOWNLOAD = Strategy(
    name="redownload", kind="component_isolation",
    summary="fetch the missing or damaged files again",
    answers=_BROKEN, stages=("load",),
    limitations="Guidance only: wan_nb never downloads.",
    cost_rank=11, guidance=True, _script=_redownload_script,
)
ALTERNATIVE = Strategy(
    name="alternative_model", kind="alternative_model",
    summary="use another model the installed diffusers can run",
    answers=_SUBSTITUTION + _BROKEN, stages=("load",),
    limitations="Guidance only: a different model gives a different video.",
    quality="changed", cost_rank=12, guidance=True, _script=_alternative_script,
)

STRUCTURAL: tuple[Strategy, ...] = (GENERIC, ASSEMBLE, REMOTE, DONOR, UPGRADE, REDOWNLOAD, ALTERNATIVE)
