"""Checks at entry: every public function rejects a bad argument, naming it, before running anything of the user's."""

from __future__ import annotations

import pytest

import wan_nb
from wan_nb.settings import GenerationSettings


def _never_runs():
    raise AssertionError("the user's code ran before the arguments were checked")


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({"budget": "12 parsecs"}, ValueError, "12 parsecs"),
    ({"budget": 1.5}, ValueError, "`budget`"),
    ({"device": "gpu"}, ValueError, "`device`"),
    ({"strategies": ["vae_tilling"]}, ValueError, "vae_tilling"),
    ({"strategies": "vae_tiling"}, TypeError, "`strategies`"),
    ({"max_attempts": -1}, ValueError, "`max_attempts`"),
    ({"settings": {"height": 480}}, TypeError, "`settings`"),
    ({"on_attempt": "print"}, TypeError, "`on_attempt`"),
    ({"diagnosis": "out of memory"}, TypeError, "`diagnosis`"),
    ({"models_dir": "/no/such/folder"}, ValueError, "`models_dir`"),
])
def test_recover_checks_every_argument_before_running_the_cell(kwargs, error, named):
    diagnosis = wan_nb.Diagnosis("out_of_memory", "vae_decode", "ran out")
    with pytest.raises(error, match=named.replace("(", r"\(")):
        wan_nb.recover(_never_runs, diagnosis=kwargs.pop("diagnosis", diagnosis), **kwargs)


def test_retry_on_failure_checks_its_options_when_it_decorates():
    with pytest.raises(ValueError, match="`device`"):
        wan_nb.retry_on_failure(device="gpu")
    with pytest.raises(ValueError, match="`budget`"):
        wan_nb.retry_on_failure(_never_runs, budget=0)


@pytest.mark.parametrize(("args", "kwargs", "error", "named"), [
    (("out of memory", None, None), {}, TypeError, "`diagnosis`"),
    ((None, None, None, "gpu"), {}, ValueError, "`device`"),
    ((None, None, {"height": 1}), {}, TypeError, "`settings`"),
    ((None, None, None, "cpu", "lots"), {}, ValueError, "lots"),
    ((None, None, None, "cpu"), {"margin": 1.5}, ValueError, "`margin`"),
    ((None, None, None, "cpu"), {"strategies": "vae_tiling"}, TypeError, "`strategies`"),
])
def test_plan_checks_its_arguments(args, kwargs, error, named):
    with pytest.raises(error, match=named):
        wan_nb.plan(*args, **kwargs)


def test_plan_of_no_diagnosis_is_for_an_out_of_memory_failure():
    assert wan_nb.plan(None, None, None, "cpu").category == "out_of_memory"


@pytest.mark.parametrize(("fields", "named"), [
    ({"category": "oom"}, "`category`"),
    ({"stage": "decode"}, "`stage`"),
    ({"suggested": ("tiling",)}, "`suggested`"),
    ({"suggested": "vae_tiling"}, "`suggested`"),
    ({"evidence": {"tried": [1, 2]}}, "`evidence`"),
])
def test_a_diagnosis_is_checked_as_from_dict_checks_it(fields, named):
    values = {"category": "out_of_memory", "stage": "vae_decode", "summary": "ran out", **fields}
    with pytest.raises((ValueError, TypeError), match=named):
        wan_nb.Diagnosis(**values)


def test_estimate_memory_checks_before_reading_the_folder(tmp_path):
    missing = tmp_path / "nothing-here"
    with pytest.raises(ValueError, match="`device`"):
        wan_nb.estimate_memory(missing, GenerationSettings(), device="gpu")
    with pytest.raises(ValueError, match="`vae_dtype`"):
        wan_nb.estimate_memory(missing, GenerationSettings(), vae_dtype="fp8")
    with pytest.raises(TypeError, match="`settings`"):
        wan_nb.estimate_memory(missing, {"height": 480})


def test_measure_budget_and_analysis_name_the_bad_argument():
    with pytest.raises(ValueError, match="`device`"):
        wan_nb.measure(device="gpu")
    with pytest.raises(TypeError, match="`pipeline`"):
        wan_nb.measure(pipeline="pipe")
    with pytest.raises(ValueError, match="`device`"):
        wan_nb.memory_budget("1GiB", device="graphics")
    with pytest.raises(TypeError, match="`path`"):
        wan_nb.analyze_model_components(42)
    with pytest.raises(TypeError, match="strategy"):
        wan_nb.get_strategy(3)
