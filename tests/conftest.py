"""Shared pytest fixtures: tiny real pipelines, synthetic checkpoints, breakable copies.

- ``tiny_path(variant="wan2.1-t2v", size=1) -> Path``: a tiny pipeline folder, built once
  per session (or reused from ``WAN_NB_FIXTURE_CACHE`` when set). Read-only by contract.
- ``synth_path(preset) -> Path``: a sparse full-size checkpoint, written once per session.
- ``model_copy(src) -> Path``: a fresh copy under this test's ``tmp_path``, free to break.

Nothing heavy is imported here: collecting tests stays fast, and a test may check that
``import wan_nb`` does not import torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

# torch reads this once, at import. The tiny models are bound by per-op overhead, not by
# arithmetic: on the shared 2-core machines a second OpenMP thread mostly spin-waits for a
# core another process holds. Measured with other jobs running: a warm tiny call took
# 1.4-2.3 s of CPU with 2 threads and 0.1 s with 1. A value set by the user wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tokenizers' own thread pool warns (and can deadlock) after a fork otherwise.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixture_cache(tmp_path_factory) -> Path:
    """Where this session's tiny pipelines live (``WAN_NB_FIXTURE_CACHE`` if set)."""
    env = os.environ.get("WAN_NB_FIXTURE_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_path(fixture_cache) -> Callable[..., Path]:
    from wan_nb.fixtures import tiny_pipeline_path

    def factory(variant: str = "wan2.1-t2v", size: int = 1, *, published_names: bool = False) -> Path:
        return tiny_pipeline_path(variant, size, cache_dir=fixture_cache, published_names=published_names)

    return factory


@pytest.fixture(scope="session")
def synth_path(tmp_path_factory) -> Callable[[str], Path]:
    from wan_nb.fixtures import write_synthetic_checkpoint

    root = tmp_path_factory.mktemp("synth")
    made: dict[str, Path] = {}

    def factory(preset: str) -> Path:
        if preset not in made:
            made[preset] = write_synthetic_checkpoint(root / f"synth-{preset}", preset)
        return made[preset]

    return factory


@pytest.fixture
def model_copy(tmp_path) -> Callable[[str | os.PathLike[str]], Path]:
    from wan_nb.fixtures import copy_model

    count = 0

    def factory(src: str | os.PathLike[str]) -> Path:
        nonlocal count
        count += 1
        return copy_model(src, tmp_path / f"copy{count}-{Path(src).name}")

    return factory


@pytest.fixture(autouse=True)
def _history_in_tmp(tmp_path, monkeypatch):
    """Attempts are recorded (``wan_nb.history``): never into the user's home during tests."""
    monkeypatch.setenv("WAN_NB_HISTORY", str(tmp_path / "wan_nb_history.jsonl"))


@pytest.fixture(autouse=True, scope="module")
def _collect_what_a_module_left():
    """Collect the reference cycles a test module leaves (pipelines hold some) before the next one.

    The CPU budget counts every live tensor storage in the process, unreachable cycles not yet
    collected included: without this, a module that loads larger pipelines would shrink the
    room of a later module's absolute budget (``memory_budget("16MB")``).
    """
    yield
    import gc

    gc.collect()


@pytest.fixture(scope="module")
def strict_diagnose():
    """``WAN_NB_STRICT_DIAGNOSE=1`` for a module: a rule error fails the test instead of reading "unknown"."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAN_NB_STRICT_DIAGNOSE", "1")
        yield
