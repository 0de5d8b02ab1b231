"""Every public record's ``to_dict()`` is JSON-native, and ``from_dict`` gives the record back.

The records are made the way a user gets them: a real recovery of a tiny pipeline under a
memory budget, a real measurement, the fallback handler on a folder whose pipeline class the
installed diffusers lacks, the donor search, the registry, the history the recovery wrote.
Every class in wan_nb that defines ``to_dict`` must have a maker in ``MAKERS``, so a record
added later without coverage fails :func:`test_every_class_with_to_dict_is_covered`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest

import wan_nb
from wan_nb import history

torch = pytest.importorskip("torch")


def _classes_with_to_dict() -> set[str]:
    found = set()
    for info in pkgutil.walk_packages(wan_nb.__path__, "wan_nb."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__ == module.__name__ and "to_dict" in vars(value):
                found.add(value.__qualname__)
    return found


# --------------------------------------------------------------------------- what a user has


@pytest.fixture(scope="module")
def world(tiny_path, tmp_path_factory) -> dict[str, Any]:
    """One real session's worth of results, made once for the module."""
    import gc

    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import copy_model, faults, tiny_call_kwargs

    root = tmp_path_factory.mktemp("records")
    out: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        # The recovery writes its attempts to the history: this module's own file, never the home's.
        mp.setenv("WAN_NB_HISTORY", str(root / "history.jsonl"))
        mp.setenv("HF_HUB_CACHE", str(root / "hub"))
        mp.setenv("HF_HOME", str(root / "hf"))
        path = tiny_path("wan2.1-t2v")
        out["path"] = path

        # A recovery under a budget the call exceeds in its VAE decode (64x64 px, 9 frames):
        # tiling replays the kept latents, fewer frames changes the call.
        pipe = DiffusionPipeline.from_pretrained(path)
        pipe.set_progress_bar_config(disable=True)
        call = tiny_call_kwargs("wan2.1-t2v", height=64, width=64, num_frames=9, num_inference_steps=2)

        def run():
            return pipe(**{**call, "generator": tiny_call_kwargs()["generator"]})

        gc.collect()
        with wan_nb.measure(pipeline=pipe) as meter:
            run()
        out["meter"] = meter
        budget = meter.result.baseline_bytes + int(0.8 * (meter.result.peak_bytes - meter.result.baseline_bytes))
        # No error given: the recovery first runs the cell as it is (its probe), and it fails.
        out["report"] = wan_nb.recover(run, pipeline=pipe, budget=budget, explore=True, allow_degraded=True, force=True,
                                       strategies=["vae_tiling", "fewer_frames"])
        out["history"] = history.load_history()

        # A folder without its VAE next to a model that can give one; one with its own code.
        models = root / "models"
        broken = copy_model(path, models / "broken")
        faults.remove_component(broken, "vae")
        copy_model(tiny_path("wan2.2-t2v-a14b"), models / "other")
        out["broken"] = broken
        custom = copy_model(path, root / "custom")
        (custom / "pipeline.py").write_text("from diffusers import WanPipeline\n\n"
                                            "class CustomWanPipeline(WanPipeline):\n    pass\n")
        index = json.loads((custom / "model_index.json").read_text())
        index["_class_name"] = ["pipeline", "CustomWanPipeline"]
        (custom / "model_index.json").write_text(json.dumps(index))
        out["custom"] = custom
        # ... and one whose pipeline class the installed diffusers lacks.
        wan3 = copy_model(path, root / "alone" / "wan3")
        faults.set_pipeline_class(wan3, "Wan3Pipeline")
        out["wan3"] = wan3

        # The fallback handler on each, as the seed's API is called.
        fast = tiny_call_kwargs(num_inference_steps=1, num_frames=1, guidance_scale=1.0)
        handler = wan_nb.FallbackHandler(include_hf_cache=False)
        out["fallback"] = [
            wan_nb.handle_pipeline_failure(wan3, _load_error(wan3), {"call_kwargs": fast}),
            handler.handle(broken, _load_error(broken)),
            wan_nb.handle_pipeline_failure(path, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate "
                                                                        "20.00 GiB."), {"available_memory": "16GB"}),
        ]
        yield out


def _load_error(path):
    from diffusers import DiffusionPipeline

    try:
        DiffusionPipeline.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - the failure the handler is given
        return exc
    raise AssertionError(f"{path} loaded")


def _report(w):
    return [w["report"]]


def _attempts(w):
    report = w["report"]
    return [*report.attempts, report.probe]


def _user_call(w):
    call = w["report"].call
    assert call is not None and call.arguments, "the recovery saw no call"
    return [call]


def _plan(w):
    return [w["report"].plan, wan_nb.plan(wan_nb.diagnose("torch.OutOfMemoryError: CUDA out of memory."),
                                          w["path"], wan_nb.GenerationSettings(32, 32, 5), budget="1MiB")]


def _candidates(w):
    return [c for p in _plan(w) for c in p.candidates]


def _diagnosis(w):
    return [wan_nb.Diagnosis.from_dict(w["report"].diagnosis),
            wan_nb.diagnose("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
                            "total capacity of 23.55 GiB of which 1.25 GiB is free.")]


def _components(w):
    report = wan_nb.analyze_model_components(w["path"], deep=True)
    return [report, wan_nb.analyze_model_components(w["broken"])]


def _component_infos(w):
    return [c for r in _components(w) for c in r.components]


def _estimate(w):
    settings = w["report"].settings
    return [wan_nb.estimate_memory(w["path"], settings, device="cpu"),
            wan_nb.estimate_memory(w["path"], settings, "fewer_frames+vae_tiling", memory_available=10**6)]


def _registry(w):
    from wan_nb.model.registry import load_registry

    return load_registry()


def _peaks(w):
    return [p for entry in _registry(w) for p in entry.peak_memory]


def _history(w):
    assert w["history"], "the recovery wrote no history"
    return list(w["history"])


def _probability(w):
    return [p for _, p in history.rank_strategies(
        ["vae_tiling", "fewer_frames"], "out_of_memory", estimates={"vae_tiling": 900_000, "fewer_frames": None},
        available=1_000_000, history=w["history"])]


def _fallback(w):
    return list(w["fallback"])


def _fallback_strategies(w):
    return [s for r in _fallback(w) for s in (*r.strategies, r.strategy) if s is not None]


def _fallback_attempts(w):
    return [a for r in _fallback(w) for a in r.attempts]


def _usable(w):
    return [c for r in _fallback(w) for c in r.components] + wan_nb.isolate_components(w["broken"])


def _alternatives(w):
    return wan_nb.suggest_alternatives(w["path"], "16GB", limit=3) + [
        a for r in _fallback(w) for a in r.alternatives]


def _assembly(w):
    from wan_nb.repair import plan_assembly

    return [plan_assembly(w["path"]), plan_assembly(w["wan3"]),
            plan_assembly(w["broken"], donors={"vae": w["broken"].parent / "other"})]


def _sources(w):
    return [s for p in _assembly(w) for s in p.components]


def _donors(w):
    from wan_nb.repair import find_donors

    donors, _ = find_donors(w["broken"], "vae")
    return donors


def _options(w):
    from wan_nb.repair import substitution_options

    return [o for folder in ("path", "wan3", "custom") for o in substitution_options(w[folder])]


def _redownload(w):
    return wan_nb.redownload_instructions(w["broken"], repo_id="Wan-AI/Wan2.1-T2V-1.3B-Diffusers")


def _remote(w):
    from wan_nb.repair import find_remote_code

    return [find_remote_code(w["custom"])]


def _upgrade(w):
    return [wan_nb.upgrade_guidance(w["wan3"]), wan_nb.upgrade_guidance(w["path"])]


def _settings(w):
    return [w["report"].settings, wan_nb.GenerationSettings()]


def _measurement(w):
    return [w["meter"].result]


def _meter(w):
    return [w["meter"]]


def _strategy(w):
    return [wan_nb.get_strategy(n) for n in (*wan_nb.STRATEGIES, "model_cpu_offload+vae_tiling")]


MAKERS: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "RecoveryReport": _report,
    "Attempt": _attempts,
    "UserCall": _user_call,
    "Plan": _plan,
    "Candidate": _candidates,
    "Diagnosis": _diagnosis,
    "ComponentReport": _components,
    "ComponentInfo": _component_infos,
    "MemoryEstimate": _estimate,
    "Measurement": _measurement,
    "Meter": _meter,
    "ModelEntry": _registry,
    "PeakFigure": _peaks,
    "HistoryRecord": _history,
    "Probability": _probability,
    "FallbackResult": _fallback,
    "FallbackStrategy": _fallback_strategies,
    "AttemptRecord": _fallback_attempts,
    "UsableComponent": _usable,
    "AlternativeModel": _alternatives,
    "AssemblyPlan": _assembly,
    "ComponentSource": _sources,
    "Donor": _donors,
    "SubstitutionOption": _options,
    "Redownload": _redownload,
    "RemoteCode": _remote,
    "UpgradeGuidance": _upgrade,
    "GenerationSettings": _settings,
    "Strategy": _strategy,
}


def test_every_class_with_to_dict_is_covered():
    found = _classes_with_to_dict()
    assert found, "no class with to_dict found: the walk is broken"
    assert found == set(MAKERS), (f"without a maker here: {sorted(found - set(MAKERS))}; "
                                  f"makers of classes that are gone: {sorted(set(MAKERS) - found)}")


def _plain(value: Any, where: str = "") -> list[str]:
    """Where ``value`` holds something that is not a JSON value (a tuple, a Path, a numpy number...)."""
    if value is None or isinstance(value, (bool, str)):
        return []
    if type(value) in (int, float):
        return []
    if type(value) is list:
        return [p for i, v in enumerate(value) for p in _plain(v, f"{where}[{i}]")]
    if type(value) is dict:
        return [f"{where} key {k!r}" for k in value if type(k) is not str] + [
            p for k, v in value.items() for p in _plain(v, f"{where}.{k}")]
    return [f"{where}: {type(value).__name__} {value!r:.80}"]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_to_dict_is_json_native_and_from_dict_gives_the_record_back(world, name):
    records = [r for r in MAKERS[name](world) if r is not None]
    assert records, f"no {name} was made"
    for record in records:
        assert type(record).__name__ == name
        data = record.to_dict()
        assert _plain(data) == [], f"{name}.to_dict() holds non-JSON values: {_plain(data)[:5]}"
        again = json.loads(json.dumps(data))
        assert again == data, name
        if hasattr(type(record), "from_dict"):
            rebuilt = type(record).from_dict(again)
            assert rebuilt == record, name
            assert rebuilt.to_dict() == data, name
