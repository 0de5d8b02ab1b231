"""wan_nb.memory.budget: a genuine torch.OutOfMemoryError past the budget, nothing left behind."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from wan_nb.memory import measure, memory_budget  # noqa: E402
from wan_nb.memory._tracker import TRACKER  # noqa: E402

MB = 2**20


def _in_use() -> int:
    with measure("cpu") as m:
        pass
    return m.baseline_bytes


def test_over_budget_allocation_raises_a_real_oom_with_the_allocator_wording():
    base = _in_use()
    with memory_budget(base + 10 * MB, device="cpu") as budget:
        ok = torch.ones(6 * MB, dtype=torch.uint8)
        with pytest.raises(torch.OutOfMemoryError) as info:
            torch.ones(6 * MB, dtype=torch.uint8)  # factory: refused before it allocates
        with pytest.raises(torch.OutOfMemoryError):
            ok.to(torch.float16)  # an op's output: refused and dropped
        del ok
        again = torch.ones(6 * MB, dtype=torch.uint8)  # freed memory is available again
    message = str(info.value)
    assert "Tried to allocate 6.00 MiB" in message
    assert "budget" in message and "in use" in message
    assert budget.limit_bytes == base + 10 * MB
    assert isinstance(info.value, RuntimeError)  # as torch's own OOM is
    del again


def test_leaving_releases_everything():
    with memory_budget("1MiB", device="cpu"):
        pass
    assert not TRACKER.active and TRACKER.limit is None
    big = torch.ones(64 * MB, dtype=torch.uint8)  # no budget any more
    assert big.numel() == 64 * MB


def test_a_huge_factory_request_never_touches_memory():
    with memory_budget("64MiB", device="cpu"):
        with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate 1.00 TiB"):
            torch.zeros(2**40, dtype=torch.uint8)


def test_nested_budgets_take_the_smaller():
    base = _in_use()
    with memory_budget(base + 100 * MB, device="cpu"):
        with memory_budget(base + 1000 * MB, device="cpu"):
            with pytest.raises(torch.OutOfMemoryError):
                torch.empty(200 * MB, dtype=torch.uint8)
        with memory_budget(base + 10 * MB, device="cpu"):
            with pytest.raises(torch.OutOfMemoryError):
                torch.empty(50 * MB, dtype=torch.uint8)
        # the inner one is gone: back to the outer limit
        x = torch.empty(50 * MB, dtype=torch.uint8)
    del x


def test_budget_inside_a_meter_and_the_refused_bytes_are_not_a_peak():
    with measure("cpu") as m:
        with memory_budget(m.baseline_bytes + 5 * MB, device="cpu"):
            a = torch.empty(4 * MB, dtype=torch.uint8)
            with pytest.raises(torch.OutOfMemoryError):
                a.float()
        del a
    assert m.added_bytes == 4 * MB


def test_every_calling_form():
    for form in ("12GiB", 12 * 2**30, "16 GB", 1.0):
        with memory_budget(form, device="cpu") as b:
            assert b.limit_bytes > 0
    with memory_budget(0.5, device="cpu") as half, memory_budget(1.0, device="cpu") as whole:
        assert abs(half.limit_bytes * 2 - whole.limit_bytes) <= 2

    @memory_budget("1MiB", device="cpu")
    def allocate():
        return torch.empty(2 * MB, dtype=torch.uint8)

    with pytest.raises(torch.OutOfMemoryError):
        allocate()
    with pytest.raises(torch.OutOfMemoryError):
        allocate()  # a decorator enters afresh on every call
    for bad in (1.5, 0, "lots", -3):
        with pytest.raises(ValueError):
            memory_budget(bad)


def test_a_pipeline_under_budget_fails_and_over_budget_runs(tiny_path):
    from diffusers import DiffusionPipeline

    from wan_nb.fixtures import tiny_call_kwargs

    pipe = DiffusionPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1))
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(height=64, width=64, num_frames=5)
    with torch.no_grad(), measure("cpu") as m:
        pipe(**tiny_call_kwargs("wan2.1-t2v", **kwargs))
    need = m.peak_bytes
    with torch.no_grad(), memory_budget(need + 2 * MB, device="cpu"):
        frames = pipe(**tiny_call_kwargs("wan2.1-t2v", **kwargs)).frames
    assert frames.shape[1] == 5
    with torch.no_grad(), memory_budget(need - 2 * MB, device="cpu"):
        with pytest.raises(torch.OutOfMemoryError, match="CPU out of memory under wan_nb.memory_budget"):
            pipe(**tiny_call_kwargs("wan2.1-t2v", **kwargs))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_cuda_budget_caps_the_device_and_restores_it():
    torch.cuda.empty_cache()
    before_fraction = torch.cuda.get_per_process_memory_fraction()
    in_use = torch.cuda.memory_reserved()
    with memory_budget(in_use + 512 * MB, device="cuda") as b:
        free, _ = torch.cuda.mem_get_info()
        assert free <= 600 * MB  # code that reads free memory sees the small device
        x = torch.empty(256 * MB, dtype=torch.uint8, device="cuda")
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(512 * MB, dtype=torch.uint8, device="cuda")
        del x
        with measure("cuda") as m:
            y = torch.empty(64 * MB, dtype=torch.uint8, device="cuda")
            del y
        assert m.added_bytes == 64 * MB  # the ballast is not counted
    assert b.device.startswith("cuda")
    assert torch.cuda.get_per_process_memory_fraction() == before_fraction
    big = torch.empty(1024 * MB, dtype=torch.uint8, device="cuda")
    del big


@cuda
def test_cuda_meter_hand_computed():
    with measure("cuda") as m:
        a = torch.empty(4 * MB, dtype=torch.uint8, device="cuda")
        b = torch.empty(16 * MB, dtype=torch.uint8, device="cuda")
        c = torch.empty(16 * MB, dtype=torch.uint8, device="cuda")
        del b
        d = torch.empty(8 * MB, dtype=torch.uint8, device="cuda")
    assert m.added_bytes == 36 * MB
    del a, c, d
