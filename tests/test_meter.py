"""wan_nb.memory.meter: exact on a hand-computed case, honest per stage, leaves no trace."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from wan_nb.memory import Measurement, measure  # noqa: E402
from wan_nb.memory._tracker import TRACKER  # noqa: E402

MB = 2**20


def _alloc(n_mb: int):
    return torch.empty(n_mb * MB, dtype=torch.uint8)


def test_hand_computed_peak_is_exact():
    keep = _alloc(3)  # alive before the block: part of the baseline
    with measure("cpu") as m:
        a = _alloc(4)
        b = _alloc(16)
        c = _alloc(16)
        del b
        d = _alloc(8)
    # 4 + 16 + 16 live at once = 36 MiB above the baseline; 4 + 16 + 8 = 28 at the end.
    assert m.peak_bytes - m.baseline_bytes == 36 * MB
    assert m.added_bytes == 36 * MB
    assert m.baseline_bytes >= keep.nbytes
    assert m.result.source == "measured"
    assert m.seconds > 0
    assert m.device == "cpu"
    del a, c, d, keep


def test_views_inplace_and_factories_count_once():
    with measure("cpu") as m:
        x = torch.zeros(2 * MB, dtype=torch.uint8)  # factory through the dispatcher
        views = [x[: MB], x.view(2, MB), x.reshape(-1)]  # same storage: nothing new
        x.add_(1)  # in place: nothing new
        y = x.float()  # a new 8 MiB storage
        del y
    assert m.added_bytes == (2 + 8) * MB
    del views


def test_frees_inside_the_block_lower_the_level():
    before = _alloc(10)
    with measure("cpu") as outer:
        del before  # freed inside: the level drops below the baseline
        with measure("cpu") as inner:
            z = _alloc(5)
            del z
    assert outer.peak_bytes == outer.baseline_bytes
    assert inner.baseline_bytes == outer.baseline_bytes - 10 * MB
    assert inner.added_bytes == 5 * MB


def test_nested_meters_see_their_own_windows():
    with measure("cpu") as outer:
        a = _alloc(8)
        with measure("cpu") as inner:
            b = _alloc(2)
        del a, b
        c = _alloc(1)
        del c
    assert inner.added_bytes == 2 * MB
    assert inner.baseline_bytes == outer.baseline_bytes + 8 * MB
    assert outer.added_bytes == 10 * MB
    assert not TRACKER.active


def test_live_readings_during_the_block():
    with measure("cpu") as m:
        a = _alloc(6)
        assert m.added_bytes == 6 * MB
        del a
        assert m.added_bytes == 6 * MB  # a peak stays a peak
    with pytest.raises(RuntimeError, match="after"):
        _ = measure("cpu").result


def test_measurement_round_trip_and_never_an_estimate():
    data = Measurement(peak_bytes=10, baseline_bytes=4, by_stage={"denoise": 9}, seconds=1.5, device="cpu").to_dict()
    back = Measurement.from_dict(data)
    assert back.to_dict() == data
    assert back.added_bytes == 6
    with pytest.raises(ValueError, match="measured"):
        Measurement.from_dict({**data, "source": "estimate"})


def test_other_threads_are_refused_while_running():
    errors = []

    def other():
        try:
            with measure("cpu"):
                pass
        except RuntimeError as exc:
            errors.append(str(exc))

    with measure("cpu"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors and "thread" in errors[0]


def test_a_failed_start_leaves_nothing_running():
    with pytest.raises(TypeError, match="diffusers pipeline"):
        with measure("cpu", pipeline=object()):
            pass
    assert not TRACKER.active


def test_meta_device_is_refused():
    with pytest.raises(ValueError, match="meta"):
        with measure("meta"):
            pass


def _stage_run(tiny_path, **overrides):
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import tiny_call_kwargs

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad(), measure(pipeline=pipe) as m:
        pipe(**tiny_call_kwargs("wan2.1-t2v", **overrides))
    return pipe, m


def test_vae_decode_wins_when_it_dominates_and_hooks_are_removed(tiny_path):
    # Full-resolution decoder work at 128x128 dwarfs a 2-layer transformer on 2x8x8 tokens.
    pipe, m = _stage_run(tiny_path, height=128, width=128, num_frames=5)
    stages = m.by_stage
    assert {"text_encode", "denoise", "vae_decode", "postprocess"} <= set(stages)
    assert max(stages, key=stages.get) == "vae_decode"
    assert stages["vae_decode"] == m.peak_bytes
    assert stages["vae_decode"] > stages["denoise"]
    # The pipeline is left exactly as it was: no wrapper, no hook.
    assert "decode" not in vars(pipe.vae) and "encode" not in vars(pipe.vae)
    assert not pipe.transformer._forward_pre_hooks and not pipe.text_encoder._forward_pre_hooks
    assert m.device == "cpu"


def test_denoise_wins_when_the_transformer_dominates(tiny_path):
    # Many latent frames at a small size, no decode: the transformer's activations peak.
    _, m = _stage_run(tiny_path, height=32, width=32, num_frames=61, output_type="latent")
    stages = m.by_stage
    assert "vae_decode" not in stages
    assert max(stages, key=stages.get) == "denoise"
    assert stages["denoise"] == m.peak_bytes
