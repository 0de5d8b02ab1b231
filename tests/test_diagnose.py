"""wan_nb.diagnosis.core: the labelled corpus, live exceptions, evidence, round trips, robustness."""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
import types
import weakref
from collections import Counter
from pathlib import Path

import pytest
from _cases import read_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wan_nb.diagnosis import Diagnosis, diagnose, diagnose_file, diagnose_text
from wan_nb.vocabulary import CATEGORIES, STAGES, STRATEGY_NAMES

CORPUS = Path(__file__).parent / "data" / "tracebacks"
REAL = CORPUS / "real"  # the real corpus: tested in tests/test_diagnose_real.py
CASE_FILES = sorted(p for p in CORPUS.rglob("*.txt") if REAL not in p.parents)


# Rule errors fail these tests instead of becoming an "unknown" diagnosis (what users get).
pytestmark = pytest.mark.usefixtures("strict_diagnose")


# --- the corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_corpus_case(path):
    header, text = read_case(path)
    d = diagnose(text)
    assert (d.category, d.stage) == (header["category"], header["stage"]), d.to_text()
    if "component" in header:
        assert d.component == header["component"], d.to_text()


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_corpus_diagnosis_is_well_formed(path):
    _, text = read_case(path)
    d = diagnose(text)
    assert d.summary and d.next_steps
    assert set(d.suggested) <= set(STRATEGY_NAMES)
    assert len(set(d.suggested)) == len(d.suggested)
    assert d.recoverable is (d.category not in ("accelerator_fault", "user_code", "unknown"))
    assert all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in d.evidence.items())
    assert Diagnosis.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_corpus_labels_and_coverage():
    headers = [read_case(p)[0] for p in CASE_FILES]
    assert len(headers) >= 40
    for h in headers:
        assert h["category"] in CATEGORIES and h["stage"] in STAGES and h.get("source")
    by_category = Counter(h["category"] for h in headers)
    assert set(by_category) == set(CATEGORIES), set(CATEGORIES) - set(by_category)
    assert all(n >= 2 for n in by_category.values()), by_category
    captured = [h for h in headers if h["source"].startswith("captured")]
    assert len(captured) >= 10
    texts = "\n".join(read_case(p)[1] for p in CASE_FILES)
    # The shapes the issue asks for are all there.
    for shape in ("[rank0]:", "Exception during processing", "C:\\", "HIP out of memory", "MPS backend out of memory",
                  "CUDA error: out of memory", "total capacity;", "budget", "Cell In[", "<ipython-input-",
                  "device-side assert", "Killed", "HeaderTooLarge", "guidance_scale_2", "ftfy"):
        assert shape in texts, shape


# --- evidence ------------------------------------------------------------------------------------

GiB, MiB = 2**30, 2**20


@pytest.mark.parametrize(("text", "expected"), [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. GPU 1 has a total capacity of 23.64 GiB"
     " of which 1.25 GiB is free. Including non-PyTorch memory, this process has 22.38 GiB memory in use. Of the"
     " allocated memory 20.00 GiB is allocated by PyTorch, and 1.50 GiB is reserved by PyTorch but unallocated.",
     {"tried_to_allocate": int(2.5 * GiB), "total_capacity": int(23.64 * GiB), "free": int(1.25 * GiB),
      "allocated_by_pytorch": 20 * GiB, "reserved_unallocated": int(1.5 * GiB), "device": "cuda:1"}),
    ("RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 8.00 GiB total capacity; 7.21 GiB"
     " already allocated; 0 bytes free; 7.31 GiB reserved in total by PyTorch)",
     {"tried_to_allocate": 20 * MiB, "total_capacity": 8 * GiB, "free": 0, "reserved_by_pytorch": int(7.31 * GiB),
      "device": "cuda:0"}),
    ("torch.OutOfMemoryError: HIP out of memory. Tried to allocate 1.00 GiB. GPU 0 has a total capacity of 23.98 GiB"
     " of which 512.00 MiB is free.", {"tried_to_allocate": GiB, "free": 512 * MiB, "device": "hip:0"}),
    ("RuntimeError: MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB, max allowed:"
     " 18.00 GB). Tried to allocate 256.00 MB on private pool.",  # MPS prints binary sizes as "GB"
     {"tried_to_allocate": 256 * MiB, "total_capacity": 18 * GiB, "allocated_by_pytorch": 17 * GiB, "device": "mps"}),
    ("torch.OutOfMemoryError: CPU out of memory under wan_nb.memory_budget: Tried to allocate 60.75 KiB; budget"
     " 6.00 MiB; in use 5.96 MiB.", {"tried_to_allocate": int(60.75 * 1024), "budget": 6 * MiB,
                                     "total_capacity": 6 * MiB, "in_use": int(5.96 * MiB),
                                     "device": "cpu (memory budget)"}),
    ("RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried"
     " to allocate 283115520 bytes. Error code 12 (Cannot allocate memory)", {"tried_to_allocate": 283115520}),
])
def test_allocator_numbers_are_parsed(text, expected):
    d = diagnose(text)
    assert d.category in ("out_of_memory", "host_out_of_memory")
    for key, value in expected.items():
        assert d.evidence[key] == value, (key, d.evidence)


def test_evidence_names_the_missing_class_and_versions():
    d = diagnose("- 🤗 Diffusers version: 0.33.1\n\nImportError: cannot import name 'WanVACEPipeline' from 'diffusers'")
    assert d.category == "pipeline_unavailable"
    assert d.evidence["missing_class"] == "WanVACEPipeline"
    assert d.evidence["installed_diffusers"] == "0.33.1"
    assert d.evidence["required_diffusers"] == "0.34.0"
    assert d.evidence["diffusers_too_old"] == "yes"
    # Upgrading is advice (the plan lists it as guidance, never runs it): a next step, not a "Try".
    assert "pip install -U diffusers" in d.next_steps[0] and "upgrade_library" not in d.suggested
    assert d.suggested[0] == "assemble_components"


def test_cuda_words_alone_are_not_an_oom():
    fault = diagnose("RuntimeError: CUDA error: device-side assert triggered\nCUDA kernel errors might be "
                     "asynchronously reported at some other API call.\nFor debugging consider passing "
                     "CUDA_LAUNCH_BLOCKING=1")
    assert fault.category == "accelerator_fault" and not fault.recoverable and not fault.suggested
    assert "restart the kernel" in " ".join(fault.next_steps).lower()
    assert diagnose("RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously "
                    "reported").category == "out_of_memory"
    assert diagnose("RuntimeError: Expected all tensors to be on the same device, but found at least two devices, "
                    "cuda:0 and cpu!").category == "device_mismatch"


@pytest.mark.parametrize(("stage", "first"), [
    ("vae_decode", "vae_tiling"), ("denoise", "group_offload"), ("text_encode", "text_encoder_cpu"),
])
def test_oom_suggestions_follow_the_stage(stage, first):
    frame = {
        "vae_decode": '  File "/x/diffusers/models/autoencoders/autoencoder_kl_wan.py", line 1, in _decode\n',
        "denoise": '  File "/x/diffusers/models/transformers/transformer_wan.py", line 1, in forward\n',
        "text_encode": '  File "/x/diffusers/pipelines/wan/pipeline_wan.py", line 1, in encode_prompt\n',
    }[stage]
    d = diagnose(f"Traceback (most recent call last):\n{frame}torch.OutOfMemoryError: CUDA out of memory.")
    assert (d.category, d.stage, d.suggested[0]) == ("out_of_memory", stage, first)


def test_structural_suggestions():
    # Downloading again is guidance the plan never carries out: it is in the next steps.
    missing = diagnose("OSError: Error no file named config.json found in directory /m/vae.")
    assert missing.suggested == ("component_donor",) and "Download" in " ".join(missing.next_steps)
    corrupt = diagnose("safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge")
    assert corrupt.suggested == ("component_donor",) and "download it again" in " ".join(corrupt.next_steps)
    assert diagnose("ImportError: cannot import name 'WanFooPipeline' from 'diffusers'").suggested[0] == (
        "assemble_components")


# --- live exceptions -----------------------------------------------------------------------------


def _holds_no_live_objects(value, seen=None) -> bool:
    seen = set() if seen is None else seen
    if id(value) in seen:
        return True
    seen.add(id(value))
    if isinstance(value, (types.TracebackType, types.FrameType, BaseException)):
        return False
    if isinstance(value, Diagnosis):
        return all(_holds_no_live_objects(getattr(value, f), seen) for f in value.__dataclass_fields__)
    if isinstance(value, dict):
        return all(_holds_no_live_objects(k, seen) and _holds_no_live_objects(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_holds_no_live_objects(v, seen) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _raise(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - whatever it raised is what we diagnose
        return exc
    raise AssertionError("expected an exception")


def test_live_dtype_error():
    import torch

    lin = torch.nn.Linear(4, 4).to(torch.bfloat16)
    exc = _raise(lambda: lin(torch.ones(1, 4)))
    d = diagnose(exc)
    assert d.category == "dtype_mismatch" and d.evidence["source"] == "exception"
    assert _holds_no_live_objects(d)


def test_live_import_error():
    exc = _raise(lambda: __import__("wan_nb_no_such_package_x"))
    d = diagnose(exc)
    assert (d.category, d.evidence["missing_package"]) == ("missing_dependency", "wan-nb-no-such-package-x")
    assert d.evidence["exception_type"] == "ModuleNotFoundError"
    assert _holds_no_live_objects(d)


def test_live_diffusers_oserror_on_empty_folder(tmp_path):
    from diffusers import DiffusionPipeline

    exc = _raise(lambda: DiffusionPipeline.from_pretrained(tmp_path))
    d = diagnose(exc)
    assert (d.category, d.stage) == ("component_missing", "load")
    assert d.evidence["missing_file"] == "model_index.json"
    assert "load_config" in d.evidence["frame"]  # where diffusers looks for model_index.json
    assert _holds_no_live_objects(d)


def test_live_missing_component_folder_is_named(tmp_path):
    """diffusers names only the model root; the folder's model_index.json says what is gone."""
    from diffusers import DiffusionPipeline

    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "WanPipeline", "_diffusers_version": "0.35.0",
        "transformer": ["diffusers", "WanTransformer3DModel"],
    }))
    exc = _raise(lambda: DiffusionPipeline.from_pretrained(tmp_path))
    d = diagnose(exc)
    assert (d.category, d.stage, d.component) == ("component_missing", "load", "transformer")
    assert d.evidence["missing_components"] == "transformer"


def test_live_chained_safetensors_error(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:100])

    def load():
        try:
            load_file(str(path))
        except Exception as exc:
            raise OSError(f"Unable to load weights from checkpoint file for '{path}'") from exc

    d = diagnose(_raise(load))
    assert (d.category, d.stage) == ("weights_corrupt", "load")


def test_live_budget_oom():
    import torch

    from wan_nb.memory.budget import memory_budget

    def run():
        with memory_budget("1MiB"):
            torch.empty(4 * 2**20, dtype=torch.uint8)

    d = diagnose(_raise(run))
    assert d.category == "out_of_memory"
    assert d.evidence["device"] == "cpu (memory budget)" and d.evidence["budget"] == 2**20
    assert d.evidence["exception_type"] == "torch.OutOfMemoryError"


def test_live_exception_frames_are_released():
    """A Diagnosis must not keep the failed frame's locals (on a GPU: its tensors) alive."""

    class Big:
        pass

    refs = []

    def fail():
        big = Big()
        refs.append(weakref.ref(big))
        raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")

    exc = _raise(fail)
    d = diagnose(exc)
    assert refs[0]() is not None  # the traceback still holds it ...
    del exc
    gc.collect()
    assert refs[0]() is None  # ... and the diagnosis does not
    assert d.category == "out_of_memory"


def test_exc_info_tuple_and_text_agree():
    try:
        raise ValueError("`height` and `width` have to be divisible by 16 but are 500 and 888.")
    except ValueError:
        by_tuple = diagnose(sys.exc_info())
        import traceback

        by_text = diagnose(traceback.format_exc())
    assert by_tuple.category == by_text.category == "invalid_input"


def test_live_exception_group_uses_its_first_failure():
    import builtins

    group_type = getattr(builtins, "ExceptionGroup", None)
    if group_type is None:  # pragma: no cover - Python 3.10
        pytest.skip("ExceptionGroup needs Python 3.11")

    def fail():
        raise group_type("pipeline failed", [RuntimeError("CUDA error: device-side assert triggered")])

    assert diagnose(_raise(fail)).category == "accelerator_fault"


def test_from_dict_rejects_what_is_not_a_diagnosis():
    with pytest.raises(ValueError, match="`category` must be one of"):
        Diagnosis.from_dict({"category": "oom", "stage": "load"})


# --- inputs, calling forms, never raising ------------------------------------------------------


@pytest.mark.parametrize("value", [None, 42, 3.5, object(), [], {"a": 1}, Path("x.log"), "", "   \n"])
def test_garbage_is_unknown_with_a_reason(value):
    d = diagnose(value)
    assert (d.category, d.stage, d.recoverable) == ("unknown", "unknown", False)
    assert d.evidence["reason"]


def test_bytes_and_files(tmp_path, monkeypatch):
    text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB."
    assert diagnose(text.encode()).category == "out_of_memory"
    assert diagnose(bytearray(text.encode())).category == "out_of_memory"
    assert diagnose_text(text).category == "out_of_memory"
    utf16 = tmp_path / "ps.log"  # what PowerShell's ">" writes
    utf16.write_bytes(text.encode("utf-16"))
    assert diagnose_file(utf16).category == "out_of_memory"
    assert diagnose_file(str(tmp_path / "missing.log")).evidence["reason"].startswith("could not read")

    class Stdin:
        buffer = __import__("io").BytesIO(text.encode())

    monkeypatch.setattr(sys, "stdin", Stdin)
    assert diagnose_file("-").category == "out_of_memory"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=3000), st.binary(max_size=3000)))
def test_never_raises_and_stays_in_the_vocabulary(value):
    d = diagnose(value)  # its speed is benchmarks/diagnose.py's business, not a unit test's
    assert d.category in CATEGORIES and d.stage in STAGES
    assert Diagnosis.from_dict(d.to_dict()) == d


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([
    "Traceback (most recent call last):", '  File "/x/autoencoder_kl_wan.py", line 3, in decode',
    "    x = self.decoder(z)", "[rank0]: ", "Cell In[3], line 2", "----> 2 pipe(prompt)",
    "torch.OutOfMemoryError: CUDA out of memory.", "During handling of the above exception, another exception "
    "occurred:", "!!! Exception during processing !!!", "100%|██| 50/50 [00:10<00:00]", "", "Killed",
]), max_size=40))
def test_traceback_like_noise_never_raises(lines):
    d = diagnose("\n".join(lines))
    assert d.category in CATEGORIES and d.stage in STAGES


@pytest.mark.parametrize("text", ["a" * 400_000, "7" * 400_000, "x " * 200_000, "a." * 200_000,
                                  "RuntimeError: " + "Killed cuda error %| 12/50 " * 20_000,
                                  "  File \"x.py\", line 1, in f\n" * 20_000])
def test_huge_or_pathological_input_stays_fast(text):
    start = time.process_time()
    d = diagnose(text)
    assert time.process_time() - start < 1.0
    assert d.category in CATEGORIES


# --- rendering, speed, imports -------------------------------------------------------------------


def test_to_text_renders_sizes_and_round_trips():
    d = diagnose(read_case(CORPUS / "oom_cuda_vae_decode_script.txt")[1])
    text = str(d)
    assert text.startswith("out_of_memory at vae_decode (vae)")
    assert "tried_to_allocate: 3.52 GiB" in text and "Try: vae_tiling" in text
    assert Diagnosis.from_dict(d.to_dict()) == d and d.to_dict()["suggested"][0] == "vae_tiling"


def test_diagnose_is_fast_on_a_long_traceback():
    _, body = read_case(CORPUS / "oom_cuda_vae_decode_script.txt")
    lines = body.split("\n")
    frames = "\n".join(lines[2:8] * 40)  # about 240 frame lines
    text = "\n".join([lines[1], frames, *lines[8:]])
    assert len(text.split("\n")) > 200
    diagnose(text)
    times = []
    for _ in range(30):
        # CPU time, not wall time: on a shared CI machine other processes inflate the latter.
        start = time.process_time()
        d = diagnose(text)
        times.append(time.process_time() - start)
    assert d.category == "out_of_memory"
    assert statistics.median(times) < 0.005, statistics.median(times)


def test_text_diagnosis_does_not_import_torch():
    code = ("import sys; from wan_nb.diagnosis.core import diagnose; "
            "d = diagnose('torch.OutOfMemoryError: CUDA out of memory.'); "
            "assert d.category == 'out_of_memory'; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_an_oom_behind_a_failed_weights_load_is_out_of_memory_at_load():
    """A CPU-budget OOM in from_pretrained surfaces as OSError <- ValueError <- OutOfMemoryError."""
    import torch

    from wan_nb.diagnosis import diagnose

    def read_tensors():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def load_state_dict():
        try:
            read_tensors()
        except Exception as exc:
            raise ValueError("could not read the tensors") from exc

    def load_model():
        try:
            load_state_dict()
        except Exception:  # noqa: BLE001 - diffusers re-raises with the context only, as here
            raise OSError("Unable to load weights from checkpoint file for "  # noqa: B904
                          "'/m/transformer/diffusion_pytorch_model.safetensors' at '/m/transformer'.")

    try:
        load_model()
    except OSError as exc:
        error = exc
    assert isinstance(error.__context__, ValueError)
    assert isinstance(error.__context__.__cause__, torch.OutOfMemoryError)
    d = diagnose(error)
    assert (d.category, d.stage) == ("out_of_memory", "load"), d
    # Without the OOM behind it the same message is damaged weights.
    plain = OSError("Unable to load weights from checkpoint file for "
                    "'/m/transformer/diffusion_pytorch_model.safetensors' at '/m/transformer'.")
    assert diagnose(plain).category == "weights_corrupt"


# --- stages from every codebase users paste from -------------------------------------------------

def _tb(*frames: tuple[str, str, str], error: str = "torch.OutOfMemoryError: CUDA out of memory.") -> str:
    lines = ["Traceback (most recent call last):"]
    for path, func, code in frames:
        lines += [f'  File "{path}", line 10, in {func}', f"    {code}"]
    return "\n".join([*lines, error])


_MODULE = "/env/lib/python3.11/site-packages/torch/nn/modules/module.py", "_call_impl", "return forward_call(*a)"


@pytest.mark.parametrize(("text", "stage"), [
    # The original Wan code: the generate loop, the DiT, T5, CLIP, the VAE.
    (_tb(("/w/Wan2.1/wan/text2video.py", "generate", "noise_pred_cond = self.model("), _MODULE,
         ("/w/Wan2.1/wan/modules/model.py", "forward", "x = block(x, **kwargs)")), "denoise"),
    (_tb(("/w/Wan2.1/wan/text2video.py", "generate", "context = self.text_encoder([input_prompt], self.device)"),
         ("/w/Wan2.1/wan/modules/t5.py", "__call__", "context = self.model(ids, mask)")), "text_encode"),
    (_tb(("/w/Wan2.1/wan/image2video.py", "generate", "clip_context = self.clip.visual([img[:, None, :, :]])"),
         ("/w/Wan2.1/wan/modules/clip.py", "visual", "out = self.model.visual(videos, use_31_block=True)")),
     "text_encode"),
    (_tb(("/w/Wan2.1/wan/image2video.py", "generate", "y = self.vae.encode([img])"),
         ("/w/Wan2.1/wan/modules/vae.py", "encode", "out = self.encoder(x)")), "vae_encode"),
    (_tb(("/w/Wan2.2/wan/textimage2video.py", "t2v", "videos = self.vae.decode(x0)"),
         ("/w/Wan2.2/wan/modules/vae2_2.py", "decode", "self.model.decode(u.unsqueeze(0),")), "vae_decode"),
    # ComfyUI: VAEDecode, KSampler, CLIPTextEncode.
    (_tb(("C:/ComfyUI/nodes.py", "decode", 'images = vae.decode(samples["samples"])'),
         ("C:/ComfyUI/comfy/sd.py", "decode", "out = self.first_stage_model.decode(samples)"),
         ("C:/ComfyUI/comfy/ldm/wan/vae.py", "decode", "out = self.decoder(x)")), "vae_decode"),
    (_tb(("/c/ComfyUI/nodes.py", "sample", "return common_ksampler(model, seed, steps)"),
         ("/c/ComfyUI/comfy/sample.py", "sample", "samples = sampler.sample(noise)"),
         ("/c/ComfyUI/comfy/ldm/wan/model.py", "forward_orig", "x = block(x, e=e0)")), "denoise"),
    (_tb(("/c/ComfyUI/nodes.py", "encode", "return (clip.encode_from_tokens_scheduled(tokens), )"),
         ("/c/ComfyUI/comfy/sd.py", "encode_from_tokens", "o = self.cond_stage_model.encode_token_weights(tokens)"),
         ("/c/ComfyUI/comfy/text_encoders/t5.py", "forward", "x = layer(x, mask)")), "text_encode"),
    # kijai's wrapper: the sampler, the decode, the text encoder, the loader.
    (_tb(("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/nodes.py", "process",
          "noise_pred, self.teacache_state = predict_with_cfg("),
         ("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/wanvideo/modules/model.py", "forward", "x = block(x)")),
     "denoise"),
    (_tb(("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/nodes.py", "decode",
          "images = vae.decode(latents, device=device, tiled=enable_vae_tiling)"),
         ("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/wanvideo/wan_video_vae.py", "decode",
          "video = self.single_decode(hidden_state, device)")), "vae_decode"),
    (_tb(("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/nodes.py", "process",
          "context = encoder(positive_prompts, device)"),
         ("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/wanvideo/modules/t5.py", "__call__",
          "context = self.model(ids, mask)")), "text_encode"),
    (_tb(("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/nodes_model_loading.py", "loadmodel",
          "sd = load_torch_file(model_path, device=transformer_load_device, safe_load=True)"),
         ("/c/ComfyUI/comfy/utils.py", "load_torch_file", "sd = safetensors.torch.load_file(ckpt, device=device)")),
     "load"),
    # Wan2GP and DiffSynth-Studio.
    (_tb(("D:/Wan2GP/wgp.py", "generate_video", "samples = wan_model.generate("),
         ("D:/Wan2GP/models/wan/any2video.py", "generate", "ret_values = trans( **gen_args , **kwargs)"), _MODULE,
         ("D:/Wan2GP/models/wan/modules/model.py", "forward", "x = block(x, **kwargs)")), "denoise"),
    (_tb(("/d/DiffSynth-Studio/diffsynth/pipelines/wan_video_new.py", "__call__",
          "noise_pred_posi = self.model_fn(**models, **inputs_shared, **inputs_posi, timestep=timestep)"),
         ("/d/DiffSynth-Studio/diffsynth/pipelines/wan_video_new.py", "model_fn_wan_video",
          "x = block(x, context, t_mod, freqs)"),
         ("/d/DiffSynth-Studio/diffsynth/models/wan_video_dit.py", "forward", "x = x + gate_msa * self.self_attn(")),
     "denoise"),
    (_tb(("/d/DiffSynth-Studio/diffsynth/pipelines/wan_video_new.py", "__call__",
          "video = self.vae.decode(inputs_shared['latents'], device=self.device, tiled=tiled)"),
         ("/d/DiffSynth-Studio/diffsynth/models/wan_video_vae.py", "decode",
          "video = self.single_decode(hidden_state, device)")), "vae_decode"),
    (_tb(("/d/DiffSynth-Studio/diffsynth/pipelines/wan_video_new.py", "process",
          "prompt_emb = pipe.prompter.encode_prompt(prompt, positive=positive, device=pipe.device)"),
         ("/d/DiffSynth-Studio/diffsynth/models/wan_video_text_encoder.py", "forward", "x = block(x, mask)")),
     "text_encode"),
    # FramePack's and SD.Next's own helpers, named for what they do; the app's line calling one.
    (_tb(("/f/FramePack/demo_gradio.py", "worker", "fake_diffusers_current_device(text_encoder, gpu)"),
         ("/f/FramePack/diffusers_helper/memory.py", "fake_diffusers_current_device", "m.to(target_device)")),
     "to_device"),
    (_tb(("/f/FramePack/demo_gradio.py", "worker",
          "move_model_to_device_with_memory_preservation(transformer, target_device=gpu, preserved_memory_gb=6)")),
     "to_device"),
    (_tb(("/f/FramePack/demo_gradio.py", "worker", "save_bcthw_as_mp4(history_pixels, output_filename, fps=30)"),
         ("/f/FramePack/diffusers_helper/utils.py", "save_bcthw_as_mp4",
          "torchvision.io.write_video(output_filename, x, fps=fps, video_codec='libx264')")), "postprocess"),
    (_tb(("/f/FramePack/demo_gradio.py", "worker",
          "input_image_np = resize_and_center_crop(input_image, target_width=width, target_height=height)")),
     "preprocess"),
    (_tb(("/s/sdnext/modules/processing_vae.py", "vae_decode", "decoded = full_vae_decode(latents=latents, model=m)"),
         ("/s/sdnext/modules/processing_vae.py", "full_vae_decode", "decoded = model.vae.decode(latents)[0]")),
     "vae_decode"),
    (_tb(("D:/Wan2GP/wgp.py", "generate_video", "image_start = convert_image(image_start)")), "preprocess"),
    # The libraries that read the input video or find its faces, and Pillow writing frames.
    (_tb(("/app/run.py", "main", "vr = decord.VideoReader(path)"),
         ("/env/site-packages/decord/video_reader.py", "__init__", "raise DECORDError(err)")), "preprocess"),
    (_tb(("/app/run.py", "main", "frames, _, info = torchvision.io.read_video(path)"),
         ("/env/site-packages/torchvision/io/video.py", "read_video", "container = av.open(filename)")), "preprocess"),
    (_tb(("/app/run.py", "main", "faces = app.get(img)"),
         ("/env/site-packages/insightface/app/face_analysis.py", "get", "bboxes, kpss = self.det_model.detect(img)")),
     "preprocess"),
    (_tb(("/app/run.py", "main", "Image.fromarray(frame).save(f'{i}.png')"),
         ("/env/site-packages/PIL/Image.py", "save", "save_handler(self, fp, filename)")), "postprocess"),
    (_tb(("/c/ComfyUI/custom_nodes/comfyui-kjnodes/nodes/image_nodes.py", "resize",
          "image = common_upscale(image, width, height, upscale_method, crop)")), "preprocess"),
    (_tb(("/app/run.py", "main", "cap = cv2.VideoCapture(args.video)")), "preprocess"),
    # PyAV: its input container decodes the input, its output container encodes the result.
    (_tb(("/app/run.py", "main", "for frame in container.decode():"),
         ("av/container/input.pyx", "decode", ""), error="AttributeError: 'X' object has no attribute 'decode'"),
     "preprocess"),
    (_tb(("/app/run.py", "main", "stream = container.add_stream('h264', rate=20)"),
         ("av/container/output.pyx", "av.container.output.OutputContainer.add_stream", "")), "postprocess"),
    (_tb(("/app/run.py", "main", "reader = torchvision.io.VideoReader(video_path, 'video')"),
         ("/env/site-packages/torchvision/io/video_reader.py", "__init__", "self.container = av.open(src)")),
     "preprocess"),
    (_tb(("/app/q.py", "main", "quantize_(transformer, Float8DynamicActivationFloat8WeightConfig())"),
         ("/env/site-packages/torchao/quantization/quant_api.py", "_normalize_granularity", "assert is_sm_at_least_90()")),
     "load"),
    # accelerate's set_module_tensor_to_device fills a model being built: a load, not a move.
    (_tb(("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/nodes.py", "loadmodel", "encoder = T5EncoderModel("),
         ("/c/ComfyUI/custom_nodes/ComfyUI-WanVideoWrapper/wanvideo/modules/t5.py", "__init__",
          "set_module_tensor_to_device(model, name, device=device, value=state_dict[name])"),
         error="KeyError: 'token_embedding.weight'"), "load"),
    # transformers initialising the weights a checkpoint lacks; ComfyUI listing its nodes' inputs.
    (_tb(("/app/run.py", "main", "vae = AutoModel.from_pretrained(path)"),
         ("/env/site-packages/transformers/models/dinov2/modeling_dinov2.py", "_init_weights",
          "module.weight.data = x.to(module.weight.dtype)"), error="AttributeError: 'NoneType' object has no attribute 'to'"),
     "load"),
    (_tb(("/c/ComfyUI/server.py", "node_info", "info['input'] = obj_class.INPUT_TYPES()"),
         ("/c/ComfyUI/custom_nodes/some_pack/nodes.py", "INPUT_TYPES", "return {'required': make_inputs()}"),
         error="TypeError: make_inputs() got an unexpected keyword argument 'x'"), "load"),
    # A frame pasted without its "File " but with its opening quote.
    ('"site-packages/accelerate/accelerator.py", line 3147, in load_state\n'
     '    self.step = override_attributes["step"]\nKeyError: \'step\'', "load"),
])
def test_stage_from_each_codebases_frames(text, stage):
    assert diagnose(text).stage == stage, diagnose(text).to_text()


@pytest.mark.parametrize(("log", "stage"), [
    ('17:12:59-849063 DEBUG    Encode: prompt="a cat" hijack=True\n'
     "Progress ?it/s                                  0% 0/50 00:08 ? Base\n"
     "17:13:19-158461 ERROR    Processing: step=base Expected all tensors to be on the same device", "denoise"),
    ("Progress  3.42s/it ███████████ 100% 5/5 00:17 00:00 Base\n"
     "14:12:20-780875 ERROR    Decode: vae=AutoencoderKLWan CUDA out of memory. Tried to allocate 4.00 GiB",
     "vae_decode"),
    ("Loading checkpoint shards:  50%|█████     | 2/4 [00:31<00:31, 15.6s/it]\nKilled", "load"),
    ("  0%|          | 0/40 [00:00<?, ?it/s]\n 12%|█▎        | 5/40 [00:41<04:47, 8.2s/it]\n"
     "torch.OutOfMemoryError: CUDA out of memory.", "denoise"),
    ("100%|██████████| 40/40 [05:10<00:00, 7.7s/it]\nDecoding video...\ntorch.OutOfMemoryError: CUDA out of memory.",
     "vae_decode"),
    ("T5Encoder: 100%|██████████| 24/24 [00:19<00:00,  1.22it/s]\n"
     "Sampling 81 frames at 832x480 with 30 steps\ntorch.OutOfMemoryError: Allocation on device", "denoise"),
    # the reporter's own sentence about where it failed
    ("I'm getting the following error in the sampler.\n\nRuntimeError: boom", "denoise"),
    ("It still crashes in the VAE encode() stage\nRuntimeError: boom", "vae_encode"),
    ("Since the update I get an exception at the KSampler:\nRuntimeError: boom", "denoise"),
    ("The nightly throws this error any time it hits the KSampler.\nRuntimeError: boom", "denoise"),
    # A node type named in the sentence about the error.
    ("Getting error WanVideoTextEncode - 'NoneType' object is not subscriptable", "text_encode"),
    ("I get this error when I pick cpu in the WanVideoModelLoaderMultiGPU node: ValueError: boom", "load"),
    # ComfyUI's prompt validation names each failing node.
    ("Failed to validate prompt for output 9:\n* VHS_LoadVideo 12:\n  - Value not valid: frame_load_cap\n"
     "Output will be ignored", "preprocess"),
    ("Prompt outputs failed validation\nVHS_VideoCombine:\n  - Return type mismatch between linked nodes: images",
     "postprocess"),
    ("Failed to load video: input/clip.mp4\ndue to: cannot open it", "preprocess"),
    ("Setup stopped during the model download steps: expected str, bytes or os.PathLike object", "load"),
    ("Unexpected architecture type in GGUF file: 'foo'", "load"),
    ("[0.30.0]: from_single_file: 'X' object has no attribute 'y'", "load"),
])
def test_stage_from_log_lines(log, stage):
    d = diagnose(log)
    assert d.stage == stage, d.to_text()


# --- categories real reports showed missing ------------------------------------------------------

_SCRIPT = ('Traceback (most recent call last):\n  File "/home/me/run_wan.py", line 12, in <module>\n'
           "    video = pipe(prompt=prompt).frames[0]\n")


@pytest.mark.parametrize(("text", "category"), [
    # The user's own script: every frame in it, from its top level.
    (_SCRIPT + "NameError: name 'pipe' is not defined", "user_code"),
    (_SCRIPT + "AttributeError: 'list' object has no attribute 'frames'", "user_code"),
    # An application spanning files is not the user's code.
    ('Traceback (most recent call last):\n  File "/app/launch.py", line 5, in <module>\n    import app\n'
     '  File "/app/app.py", line 67, in <module>\n    pipe.enable_xformers_memory_efficient_attention()\n'
     "NameError: name 'pipe' is not defined", "unknown"),
    # Wrong image channels, sizes that break the patches, a wrong argument to export_to_video.
    ("RuntimeError: Given groups=1, weight of size [1280, 3, 14, 14], expected input[1, 4, 224, 224] to have "
     "3 channels, but got 4 channels instead", "invalid_input"),
    ("RuntimeError: shape '[1, 16, 21, 30, 2, 53, 2]' is invalid for input of size 2168640", "invalid_input"),
    ('Traceback (most recent call last):\n  File "/x/site-packages/diffusers/utils/export_utils.py", line 182, '
     "in export_to_video\n    writer.append_data(frame)\nValueError: append_data requires ndarray as first arg",
     "invalid_input"),
    # A missing video-writing backend.
    ("ImportError: PyAV is not installed, and is necessary for the video operations in torchvision.",
     "missing_dependency"),
    ("RuntimeError: No ffmpeg exe could be found. Install ffmpeg on your system, or set the IMAGEIO_FFMPEG_EXE "
     "environment variable.", "missing_dependency"),
    # fp8 on a GPU without fp8 kernels.
    ("torch._inductor.exc.InductorError: CompilationError: at 1:0:\nValueError(\"type fp8e4nv not supported in this "
     "architecture. The supported fp8 dtypes are ('fp8e4b15', 'fp8e5')\")", "dtype_mismatch"),
    ("RuntimeError: \"baddbmm_cuda\" not implemented for 'Float8_e4m3fn'", "dtype_mismatch"),
    # An unsupported accelerator is not a fault, even with torch's asynchronous-error trailer.
    ("RuntimeError: CUDA error: no kernel image is available for execution on the device\nCUDA kernel errors "
     "might be asynchronously reported at some other API call", "accelerator_unavailable"),
    ("torch.AcceleratorError: HIP error: invalid device function\nHIP kernel errors might be asynchronously "
     "reported at some other API call", "accelerator_unavailable"),
])
def test_categories_real_reports_needed(text, category):
    d = diagnose(text)
    assert d.category == category, d.to_text()


def test_phrase_lists_answer_as_their_case_blind_patterns_do():
    """The lowered fast form of each phrase list says yes exactly where the re.I pattern does."""
    import re
    from pathlib import Path

    from wan_nb.diagnosis import categories
    from wan_nb.diagnosis.patterns import Phrases, _literal_starts, _lower_literals

    assert _lower_literals(r"(?P<File>\S+) Not\.Found [A-Z]") == r"(?P<File>\S+) not\.found [a-z]"
    # A branch's leading \b moves behind its first letter (so that re can scan by first
    # letters); a quantified letter, a group, a class keep theirs.
    assert _literal_starts(r"\bfoo|\bs?x|(?:\by)|[|\b]z|\b(?:q)") == r"f(?<!\w.)oo|\bs?x|(?:\by)|[|\b]z|\b(?:q)"
    fast, slow = re.compile(_literal_starts(r"\bfoo|\bbar\d")), re.compile(r"\bfoo|\bbar\d")
    for text in ("foo", "afoo", " foo", "x-foo", "bar1", "abar1", "_bar2", "", "fo", "é foo"):
        assert bool(fast.search(text)) == bool(slow.search(text)), text
    with pytest.raises(ValueError):
        Phrases(r"x|(?-i:OOM)")
    phrases = {n: p for n, p in vars(categories).items() if isinstance(p, Phrases)}
    assert len(phrases) >= 10
    corpus = Path(__file__).parent / "data" / "tracebacks"
    # Held-out reports are only measured (benchmarks/diagnose.py), never read by a test.
    held_out = set(json.loads((corpus / "real" / "heldout.json").read_text(encoding="utf-8"))["held_out"])
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in corpus.rglob("*.txt")
             if p.stem not in held_out]
    texts += ["CUDA OUT OF MEMORY", "Can't Load Tokenizer", "İstanbul: HeaderTooLarge", "",
              "DLL load failed: The Specified Procedure Could Not Be Found.", "Weights Only Load Failed."]
    texts += _check_inputs_messages()
    assert len(texts) > 300
    for name, fast in phrases.items():
        slow = re.compile(fast.pattern, re.IGNORECASE | fast.flags)
        hits = 0
        for text in texts:
            assert fast.search(text) == (slow.search(text) is not None), (name, text[:200])
            hits += fast.search(text)
        assert hits, f"{name} matched nothing: the check would not see a difference"


# --- the pipelines' own argument checks ------------------------------------------------------------

_VIDEO_PIPELINES = ("wan", "cogvideo", "ltx", "hunyuan_video", "mochi", "skyreels_v2", "allegro", "latte",
                    "animatediff", "easyanimate")


def _check_inputs_messages() -> list[str]:
    """Every message a ``check_inputs`` of the installed diffusers' video pipelines raises, as
    ``Type: message`` with its ``{...}`` fields filled by a number (read from the sources: the
    library's wording, not ours)."""
    import ast

    import diffusers

    def render(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(str(v.value) if isinstance(v, ast.Constant) else "7" for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = render(node.left), render(node.right)
            return None if left is None or right is None else left + right
        return None

    root = Path(diffusers.__file__).parent / "pipelines"
    messages = set()
    for folder in _VIDEO_PIPELINES:
        for source in sorted((root / folder).rglob("*.py")):
            for fn in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if not (isinstance(fn, ast.FunctionDef) and fn.name == "check_inputs"):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                        text = render(node.exc.args[0])
                        if text is not None:
                            messages.add(f"{getattr(node.exc.func, 'id', 'ValueError')}: {text}")
    return sorted(messages)


def test_every_argument_check_of_the_video_pipelines_is_invalid_input():
    messages = _check_inputs_messages()
    assert len(messages) > 60  # the installed diffusers' Wan, CogVideoX, LTX, Hunyuan, ... pipelines
    wrong = {m: diagnose(m).category for m in messages}
    # A call on a pipeline built without a component it needs names the component, not an argument.
    wrong = {m: c for m, c in wrong.items()
             if c != ("component_missing" if "component must be set" in m else "invalid_input")}
    assert not wrong, wrong


@pytest.mark.parametrize("call", [
    {"height": 20},                                             # not a multiple of 16
    {"prompt_embeds": "both"},                                  # both prompt and prompt_embeds
    {"prompt": None},                                           # neither
    {"negative_prompt": 3},                                     # wrong type
    {"callback_on_step_end_tensor_inputs": ["not_a_tensor"]},   # a name the pipeline has no tensor for
])
def test_a_real_wan_call_with_wrong_arguments_is_invalid_input(tiny_path, call):
    import torch
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(tiny_path("wan2.1-t2v", 1), torch_dtype=torch.float32)
    kwargs = {"prompt": "a cat", "height": 32, "width": 32, "num_frames": 5, "num_inference_steps": 1,
              "output_type": "latent"}
    kwargs.update(call)
    if kwargs.get("prompt_embeds") == "both":
        kwargs["prompt_embeds"] = torch.zeros(1, 8, pipe.text_encoder.config.d_model)
    with pytest.raises((ValueError, TypeError)) as info:
        pipe(**kwargs)
    d = diagnose(info.value)
    assert d.category == "invalid_input", d.to_text()


def test_libraries_own_dependency_checks_raised_live():
    """What transformers, diffusers and torch raise themselves when a dependency is off."""
    from diffusers.utils.versions import require_version as diffusers_requires
    from torch._inductor.exc import TritonMissing
    from transformers.utils.versions import require_version

    for check in (require_version, diffusers_requires):
        with pytest.raises(ImportError) as info:
            check("tokenizers>=999.0")  # installed, but older than asked: a mismatch, not a missing package
        assert diagnose(info.value).category == "version_mismatch", str(info.value)
    d = diagnose(TritonMissing(None))  # torch.compile's inductor without a usable triton
    assert d.category == "missing_dependency", d.to_text()


@pytest.mark.parametrize(("text", "category", "stage"), [
    # torch's fp8 matmul (fp8 "fast" modes) on a card older than Ada/Hopper: a dtype the device lacks
    ("torch._scaled_mm is only supported on CUDA devices with compute capability >= 9.0 or 8.9, or ROCm MI300+",
     "dtype_mismatch", None),
    # 4-channel (Stable Diffusion) latents where a 16-channel VAE reads them
    ("Given groups=1, weight of size [512, 16, 3, 3], expected input[1, 4, 64, 64] to have 16 channels, but got 4 "
     "channels instead", "invalid_input", None),
    # ... while RGBA where RGB goes stays an image's channels
    ("Given groups=1, weight of size [64, 3, 3, 3], expected input[1, 4, 64, 64] to have 3 channels, but got 4 "
     "channels instead", "invalid_input", "preprocess"),
    ("RuntimeError: Face not detected", "invalid_input", "preprocess"),
    ("RuntimeError: No frames generated", "invalid_input", None),
    ("av.codec.codec.UnknownCodecError: libx264", "missing_dependency", None),
    ("[libx264 @ 0x55] Unknown encoder 'libx264'", "missing_dependency", "postprocess"),
    ('ValueError: "D:\\clips\\in.mp4" could not be loaded with cv.', "component_missing", None),
    ("requests.exceptions.HTTPError: Not Found for url: https://huggingface.co/org/repo/resolve/main/model_index.json",
     "component_missing", "load"),
    ("2026-01-01 10:00:00,000 | WARNING | downloader | 3 file(s) failed to download", "component_missing", None),
    # a file missing inside an installed package is that package's release, not a model part
    ("FileNotFoundError: [Errno 2] No such file or directory: '/env/lib/python3.10/site-packages/pkg/kernel/op.cpp'",
     "version_mismatch", None),
    # ... a weights file there is still a file not there
    ("FileNotFoundError: [Errno 2] No such file or directory: '/env/lib/python3.10/site-packages/app/ckpt/model.pth'",
     "component_missing", "load"),
    # a signature mismatch pasted without its type (an issue title)
    ("forward_patched() takes from 8 to 11 positional arguments but 12 were given", "version_mismatch", None),
    ("LoraConfig.__init__() got an unexpected keyword argument 'layer_replication'", "version_mismatch", "load"),
    ("ImportError: /env/lib/python3.10/site-packages/ext_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi",
     "version_mismatch", "load"),
    # a node pack's own module (a folder name with a hyphen) is no package to install
    ("Cannot import /c/ComfyUI/custom_nodes/Some-Pack module for custom nodes: No module named 'Some-Pack.libs.x'",
     "unknown", "load"),
    ("ModuleNotFoundError: No module named 'sageattention'", "missing_dependency", "load"),
    # CPython's wording read from the first lines, after a sentence of the reporter's
    ("Hi, I get this when I start it:\nNo module named 'sageattention'", "missing_dependency", "load"),
    ("Only vision_language models support image input on this node", "invalid_input", None),
    ("ValueError: PEFT backend is required for this method.", "missing_dependency", None),
    ("Could not load lora: PEFT backend is required for this method.", "missing_dependency", "load"),
    ("LLVM ERROR: Symbol not found: __svml_cosf8_ha", "missing_dependency", None),
    ("Incorrect version of mmgp (3.5.1), version 3.5.3 is needed.", "version_mismatch", "load"),
    ("torch.backends.cuda.matmul.allow_fp16_accumulation is not available in this version of torch, requires torch "
     "2.7.0", "version_mismatch", None),
    ("AssertionError: PerRow quantization only works for CUDA>=9.0 and MI300+", "dtype_mismatch", None),
    ("An error happened while trying to locate the files on the Hub and we cannot find the appropriate snapshot folder "
     "for the specified revision on the local disk.", "component_missing", "load"),
    # an import of the hub's error class that fails is the hub's release, not a file the hub lacks
    ("ImportError: cannot import name 'LocalEntryNotFoundError' from 'huggingface_hub.errors'", "version_mismatch",
     "load"),
    ("Patch( (proj): Conv2d(32, 3072) ) does not have a parameter or a buffer named pos_embedding.",
     "version_mismatch", "load"),
    ("OSError: Could not find a backend to open <bytes> with iomode r.", "missing_dependency", "preprocess"),
    ("ValueError: PeftModel() is of type: <class 'peft.peft_model.PeftModel'>, but should be "
     "<class 'diffusers.models.modeling_utils.ModelMixin'>", "unknown", "load"),
    ("Exception when validating node: VideoCombine.VALIDATE_INPUTS() missing 1 required positional argument: 'format'",
     "version_mismatch", "postprocess"),
    ("Failed to execute startup-script: /c/ComfyUI/custom_nodes/Manager/prestartup_script.py / 'set' object is not a "
     "mapping", "unknown", "load"),
    ("RTX 6000 Unsupported CUDA architecture: sm75", "accelerator_unavailable", None),
    ("Could not open codec 'h264_nvenc': Unspecified error", "missing_dependency", "postprocess"),
    ("AttributeError: 'ImportError' object has no attribute 'open'", "missing_dependency", None),
    ("[ONNXRuntimeError] : 3 : NO_SUCHFILE : Load model from /m/landmark.onnx failed", "component_missing", "load"),
    ("Error while loading Loras: Lora 'loras/x.safetensors' contains unexpected module keys, it is likely that this "
     "Lora is for a different model", "invalid_input", "load"),
    ("AssertionError: You do not have CLIP state dict!", "component_missing", "load"),
    ("An outdated version(<1.16.9) of the `comfyui-frontend-package` is installed. It is not compatible with the "
     "current version of the Impact Pack.", "version_mismatch", None),
    ("comfyui-pack module for custom nodes: No module named 'surrealist'", "missing_dependency", "load"),
    # the reporter's sentence says which call failed (the text encoder named in it is not the stage)
    ("`XPipeline.from_pretrained()` fails when loading the text encoder component with transformers 5.1.0:\n"
     "AttributeError: 'T5GemmaConfig' object has no attribute 'attention_dropout'", "version_mismatch", "load"),
    # a reporter's hedge is no corrupt file; a library's "file is corrupted" is
    ("KeyError: 'x'\n\nI re-downloaded the files twice as I thought some might be corrupted.", "unknown", None),
    ("RuntimeError: The checkpoint file is corrupted", "weights_corrupt", "load"),
])
def test_rules_for_this_rounds_reports(text, category, stage):
    d = diagnose(text)
    assert d.category == category, d.to_text()
    if stage is not None:
        assert d.stage == stage, d.to_text()


def test_comfyui_model_folder_unknown_to_the_installed_comfyui():
    text = _tb(("D:/ComfyUI/server.py", "node_info", "info['input'] = obj_class.INPUT_TYPES()"),
               ("D:/ComfyUI/custom_nodes/Pack/loader.py", "INPUT_TYPES", 'folder_paths.get_filename_list("encoders"),'),
               ("D:/ComfyUI/folder_paths.py", "get_filename_list_", "folders = folder_names_and_paths[folder_name]"),
               error="KeyError: 'encoders'")
    d = diagnose(text)
    assert (d.category, d.stage) == ("version_mismatch", "load"), d.to_text()


def test_a_package_importing_its_compiled_part_fails_at_load():
    text = _tb(("<stdin>", "<module>", ""),
               ("/w/flash_attn/__init__.py", "<module>", "from flash_attn.flash_attn_interface import ("),
               ("/w/flash_attn/flash_attn_interface.py", "<module>", "import flash_attn_2_cuda as flash_attn_cuda"),
               error="ImportError: /x/flash_attn_2_cuda.so: undefined symbol: _ZN2at4_ops15sum_IntList_out4call")
    assert diagnose(text).stage == "load"


@pytest.mark.parametrize(("text", "category"), [
    # The argument-check wordings are diffusers'; torch's, NumPy's and transformers' own messages
    # of the same shape say something else (or nothing a rule is sure of).
    ("torch._dynamo.exc.InternalTorchDynamoError: AssertionError: expected len(self.stack) >= 2 to be true",
     "unknown"),
    ("AssertionError: expected len(fwd_inputs) == len(mutated_input_info), got 5 != 4", "unknown"),
    ("AssertionError: Expected len(input_tuple) == 1, got 3", "unknown"),
    ("RuntimeError: Detected that you are using FX to symbolically trace a dynamo-optimized function. This is not "
     "supported at the moment.", "unknown"),
    ("RuntimeError: Only tuple of tensors is supported. Got Unsupported input type: <class 'list'>", "unknown"),
    ("ValueError: all input arrays must have the same shape", "unknown"),
    ("ValueError: `tiktoken` is required to read a `tiktoken` file. Install it with `pip install tiktoken`.",
     "missing_dependency"),
    # torch's own operators without a kernel for a backend are not an extension of another build
    ("NotImplementedError: Could not run 'aten::_local_scalar_dense' with arguments from the 'Meta' backend.",
     "unknown"),
    # a model or a program kept inside an installed package is no source of that package
    ("FileNotFoundError: [Errno 2] No such file or directory: '/env/site-packages/insightface/models/antelopev2'",
     "component_missing"),
    # another node pack, not a part of the one being loaded
    ("ModuleNotFoundError: No module named 'ComfyUI-WanVideoWrapper'", "missing_dependency"),
    ("WARNING | downloader | 0 file(s) failed to download", "unknown"),
    # libraries saying a file is corrupt, in their words and in capitals
    ("OSError: Unable to load vocabulary from file. Please check that the provided vocabulary is accessible and not "
     "corrupted.", "weights_corrupt"),
    ("RuntimeError: MODEL FILE IS CORRUPTED", "weights_corrupt"),
])
def test_this_rounds_rules_leave_other_wordings_alone(text, category):
    assert diagnose(text).category == category, diagnose(text).to_text()


@pytest.mark.parametrize(("text", "category", "stage"), [
    # a message that goes on after a blank line is still one message
    ("ValueError: \n\nThe checkpoint you are trying to load has model type `wan3` but Transformers does not "
     "recognize this architecture.", "version_mismatch", "load"),
    ("RuntimeError: Failed to import diffusers.models.autoencoders.autoencoder_kl because of the following error "
     "(look up to see its traceback):\n\nNo module named 'triton'", "missing_dependency", None),
])
def test_a_message_continued_after_a_blank_line(text, category, stage):
    d = diagnose(text)
    assert d.category == category, d.to_text()
    if stage:
        assert d.stage == stage, d.to_text()


@pytest.mark.parametrize("text", [
    # A node named without any word about the failure, or a model (not the input) being loaded.
    "I used KSampler with 20 steps and WanVideoSampler too.\nRuntimeError: boom",
    "Failed to load video model weights\nRuntimeError: boom",
    "downloading the video took a while\nRuntimeError: boom",
])
def test_this_rounds_stage_rules_leave_other_sentences_alone(text):
    assert diagnose(text).stage == "unknown", diagnose(text).to_text()


def test_output_writers_and_face_restoration_are_not_input_reading():
    write = _tb(("/app/run.py", "main", "torchvision.io.write_png(frame, 'out.png')"),
                ("/env/site-packages/torchvision/io/image.py", "write_png", "torch.ops.image.write_png(input)"))
    restore = _tb(("/app/run.py", "main", "restored = restorer.enhance(frame)"),
                  ("/env/site-packages/facexlib/utils/face_restoration_helper.py", "get_face_landmarks_5", "x"))
    assert diagnose(write).stage != "preprocess" and diagnose(restore).stage != "preprocess"


_TOKENS = st.sampled_from([r"\b", "a", "b", "_", "1", " ", ".", r"\w", r"\d", "(?:", ")", "|", "[ab]", "[^a]", "?", "+",
                           "(?P<n>", "x", "é"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, min_size=1, max_size=12), st.lists(st.text("ab_1 .xé", max_size=12), min_size=1, max_size=5))
def test_literal_starts_answers_as_the_pattern_does(tokens, texts):
    import re

    from wan_nb.diagnosis.patterns import _literal_starts

    pattern = "".join(tokens)
    try:
        slow = re.compile(pattern)
    except re.error:
        return  # not a pattern at all
    fast = re.compile(_literal_starts(pattern))
    for text in texts:
        assert bool(fast.search(text)) == bool(slow.search(text)), (pattern, text)


# --- could_also_be: the other causes the same text is printed for --------------------------------


@pytest.mark.parametrize(("text", "category", "others"), [
    # A node pack's class without an attribute: its own bug, or a ComfyUI of another release.
    ("AttributeError: 'ComfyUIFluxForwardWrapper' object has no attribute 'img_in'", "unknown",
     ("version_mismatch",)),
    ("KeyError: 'step'", "unknown", ("version_mismatch",)),
    # Sizes that disagree: also a wrong input or a model file of another variant.
    ("RuntimeError: The size of tensor a (16) must match the size of tensor b (48) at non-singleton dimension 1",
     "unknown", ("version_mismatch", "invalid_input")),
    # An attribute a release lacks, with no release the rules know: also the package's own bug.
    ("AttributeError: 'CLIPTextModel' object has no attribute 'text_model'", "version_mismatch", ("unknown",)),
    ("RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
     "device_mismatch", ("unknown",)),
    # Python names the first part it cannot find: the package was found and lacks its module.
    ("ModuleNotFoundError: No module named 'impact.config'", "version_mismatch", ("component_missing",)),
    # ... except for namespace packages shared by separate distributions.
    ("ModuleNotFoundError: No module named 'google.protobuf'", "missing_dependency", ()),
    ("ModuleNotFoundError: No module named 'sageattention'", "missing_dependency", ()),
    # The text says which: nothing else to name.
    ("TypeError: WanPipeline.__call__() got an unexpected keyword argument 'guidance_scale_2'", "version_mismatch", ()),
    ("ImportError: cannot import name 'cached_download' from 'huggingface_hub'", "version_mismatch", ()),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "out_of_memory", ()),
    ("ValueError: `height` and `width` have to be divisible by 16 but are 500 and 832.", "invalid_input", ()),
    ("ValueError: boom", "unknown", ()),
    ("NameError: name 'pipe' is not defined", "unknown", ()),
])
def test_could_also_be_names_the_other_cause_the_same_text_is_printed_for(text, category, others):
    d = diagnose(text)
    assert (d.category, d.could_also_be) == (category, others), d.to_text()
    if others:
        # Each other cause comes with what to check, after the answer's own steps.
        assert len(d.next_steps) >= len(others) + 1
        assert all(step.startswith(("The same error", "If that package")) for step in d.next_steps[-len(others):])
        assert "Could also be: " + others[0] in d.to_text()


def test_could_also_be_round_trips_and_is_checked():
    d = diagnose("AttributeError: 'X' object has no attribute 'y'")
    assert Diagnosis.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert d.to_dict()["could_also_be"] == ["version_mismatch"]
    assert "version_mismatch (packages out of step)" in d.to_text()
    for bad in (("unknown",), ("no_such_category",), "version_mismatch"):
        with pytest.raises(ValueError, match="could_also_be"):
            Diagnosis(category="unknown", stage="unknown", summary="", could_also_be=bad)


def test_could_also_be_in_the_notebook_view():
    from wan_nb.notebook._html import diagnosis_html

    html = diagnosis_html(diagnose("RuntimeError: Expected all tensors to be on the same device, but found at least "
                                   "two devices, cuda:0 and cpu!"))
    assert "Could also be: unknown (a bug in a package)" in html
    assert "Could also be" not in diagnosis_html(diagnose("torch.OutOfMemoryError: CUDA out of memory."))


@pytest.mark.parametrize(("module", "others"), [
    # pluggy (pytest's) is no package the rules know: its own files may be incomplete too.
    ("pluggy.no_such_part", ("component_missing",)),
    # safetensors is a library the rules know: only a release of it lacks a module.
    ("safetensors.no_such_part", ()),
])
def test_a_live_module_missing_inside_an_installed_package(module, others):
    import importlib

    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module(module)
    d = diagnose(info.value)
    package = module.split(".")[0]
    assert d.category == "version_mismatch" and d.evidence["package"] == package, d.to_text()
    assert d.could_also_be == others
    assert d.suggested == ()  # no way of building the pipeline changes a missing module
    assert any(f"release of {package}" in step for step in d.next_steps), d.next_steps


@pytest.mark.parametrize(("module", "category", "fact"), [
    # A namespace package's distribution is named by two parts; a part inside it is a release's.
    ("google.protobuf", "missing_dependency", ("missing_package", "protobuf")),
    ("google.protobuf.internal.builder", "version_mismatch", ("package", "google.protobuf")),
    ("opentelemetry.sdk", "missing_dependency", ("missing_package", "opentelemetry-sdk")),
    ("mpl_toolkits.mplot3d", "missing_dependency", ("missing_package", "matplotlib")),
    # Parts that come in another distribution of the same import name.
    ("cv2.ximgproc", "missing_dependency", ("missing_package", "opencv-contrib-python")),
    ("mmcv._ext", "missing_dependency", ("missing_package", "mmcv-full")),
    # One node pack importing another by its folder; an app's own folder.
    ("custom_nodes.comfyui_controlnet_aux", "missing_dependency", ("node_pack", "comfyui_controlnet_aux")),
    ("utils.helpers", "component_missing", ("missing_module", "utils.helpers")),
    ("moviepy.editor", "version_mismatch", ("package", "moviepy")),
    ("sageattention", "missing_dependency", ("missing_package", "sageattention")),
])
def test_a_dotted_module_name_says_which_part_was_found(module, category, fact):
    d = diagnose(f"ModuleNotFoundError: No module named '{module}'")
    assert d.category == category and d.evidence.get(fact[0]) == fact[1], d.to_text()


def test_could_also_be_stays_short_on_every_report():
    # At most two other causes, never on failures whose text says what they are (the rebuilt
    # corpus and the real corpus's tuned part; held-out reports are only measured).
    split = json.loads((CORPUS / "real" / "heldout.json").read_text(encoding="utf-8"))
    tuned = [p for p in sorted((CORPUS / "real").glob("*.txt")) if p.stem not in set(split["held_out"])]
    for path in [*CASE_FILES, *tuned]:
        d = diagnose(read_case(path)[1])
        assert len(d.could_also_be) <= 2, path.name
        if d.category in ("out_of_memory", "host_out_of_memory", "accelerator_unavailable", "accelerator_fault",
                          "weights_corrupt", "pipeline_unavailable"):
            assert d.could_also_be == (), path.name


@pytest.mark.parametrize("text", [
    # Raised in the user's own script: no package to suspect.
    'Traceback (most recent call last):\n  File "/content/generate.py", line 3, in <module>\n'
    '    prompt = config["prompt"]\nKeyError: \'prompt\'',
    # A wrong type, not a size ("has no attribute 'shape'").
    "AttributeError: 'tuple' object has no attribute 'shape'",
    # The message names the release to install.
    "AttributeError: 'WanPipeline' object has no attribute 'x'. This needs diffusers 0.33 or later.",
    "AttributeError: module 'torch' has no attribute 'float8_e4m3fn'",
    "AttributeError: 'ModelPatcher' object has no attribute 'get_model_object'. Your ComfyUI is outdated.",
    # A library's own module missing: a release of it, never its files left out.
    "ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor'",
])
def test_could_also_be_stays_empty_where_the_text_tells_the_cause(text):
    d = diagnose(text)
    assert d.could_also_be == (), d.to_text()


@pytest.mark.parametrize(("text", "stage"), [
    # diffusers' pipelines, exceptions and torch's data classes are not ComfyUI nodes.
    ("Error when running WanImageToVideoPipeline with enable_model_cpu_offload on a 24 GB card\n"
     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.", "unknown"),
    ("CogVideoXImageToVideoPipeline fails to run on Colab\nRuntimeError: boom", "unknown"),
    ("RuntimeError: DataLoader worker (pid 1234) is killed by signal: Bus error.", "unknown"),
    ("Accelerate failed with DistributedSampler and 2 GPUs\nRuntimeError: boom", "unknown"),
    ("The node fails with UnicodeEncodeError on Windows\nRuntimeError: boom", "unknown"),
    ("UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0", "unknown"),
    ("* Sample 1:\nRuntimeError: boom", "unknown"),
    # The node nearest the failure word; the place right before it.
    ("After the KSampler finishes, VAEDecode fails with this error\nRuntimeError: boom", "vae_decode"),
    ("Works fine with CheckpointLoaderSimple but WanVideoSampler fails\nRuntimeError: boom", "denoise"),
    ("I replaced the UNETLoader node with the GGUF one and now the sampler errors\nRuntimeError: boom", "denoise"),
    ("Error messages during sampling are gone, but now VAE decode fails\nRuntimeError: boom", "vae_decode"),
    ("The error at the end, when the sampler is done and the VAE decodes\nRuntimeError: boom", "unknown"),
    # A popup's node title over an import that failed as the node ran.
    ("KSamplerAdvanced\n\ncannot import name 'sageattn_qk_int8_pv_fp8_cuda' from 'sageattention'", "denoise"),
    ("the Resize Image Node throws this error:\nStorage size calculation overflowed with sizes=[1, 3, 9, 9]",
     "preprocess"),
    # An extension, a writer or a window of that name is no input being read; a URL is no download.
    ("/x/torchvision/io/image.py:13: UserWarning: Failed to load image Python extension: 'libc10_cuda.so: cannot "
     "open shared object file'\ntorch.OutOfMemoryError: CUDA out of memory.", "unknown"),
    ("Unable to open video file for writing: out.mp4\nRuntimeError: boom", "unknown"),
    ("cv2: could not open video writer for output.mp4\nRuntimeError: boom", "unknown"),
    ("Here is my workflow, you can download it below.\nRuntimeError: boom", "unknown"),
    ("pip install torch --index-url https://download.pytorch.org/whl/cu128\ntorch.OutOfMemoryError: CUDA out of "
     "memory.", "unknown"),
    ("Imageio: 'ffmpeg-linux64-v3.3.1' was not found on your computer; downloading it now.\nBrokenPipeError: x",
     "unknown"),
    # transformers' "Downloading shards" bar is a load.
    ("Downloading shards:  50%|█████     | 1/2 [00:31<00:31, 31.0s/it]\nConnectionError: x", "load"),
    # ComfyUI lists nodes' inputs from its server as the UI loads, and again from execution.py as
    # each node runs (INPUT_TYPES alone says nothing); a quoted frame path may hold spaces.
    ('Traceback (most recent call last):\n  File "/c/ComfyUI/execution.py", line 1, in get_input_data\n'
     '    valid_inputs = class_def.INPUT_TYPES()\n  File "/c/ComfyUI/custom_nodes/p/nodes.py", line 2, in INPUT_TYPES\n'
     '    return make()\nTypeError: make() missing 1 required positional argument', "unknown"),
    ('  "C:\\\\Users\\\\J Doe\\\\ComfyUI\\\\custom_nodes\\\\w\\\\nodes_sampler.py", line 12, in process\nKeyError: 1',
     "denoise"),
])
def test_stage_rules_of_the_reviewed_round(text, stage):
    assert diagnose(text).stage == stage, diagnose(text).to_text()


@pytest.mark.parametrize(("text", "category"), [
    ("'SM89 kernel is not available. Make sure you have GPUs with compute capability 8.9.'", "accelerator_unavailable"),
    ("ERROR: Could not open requirements file: [Errno 2] No such file or directory", "component_missing"),
    ("Error while loading Loras: Lora 'a.safetensors' contains non Lora keys '['blocks.0.k.dora_scale']'",
     "invalid_input"),
    ("Error while loading Loras: No compatible weight was found in Lora file 'b.safetensors'.", "invalid_input"),
    ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (77x768 and 4096x5120)", "invalid_input"),
    ("RuntimeError: Storage size calculation overflowed with sizes=[1, 3, 542722322349980]", "invalid_input"),
    # torch's dtype wording of two matrices stays a dtype mismatch.
    ("RuntimeError: mat1 and mat2 must have the same dtype, but got Float and BFloat16", "dtype_mismatch"),
])
def test_categories_of_the_fifth_batch(text, category):
    assert diagnose(text).category == category, diagnose(text).to_text()


@pytest.mark.parametrize(("text", "category"), [
    ("ComfyUI-foo 1.2.0 is not compatible with foo 1.1.0", "version_mismatch"),
    ("ValueError: mutable default <class 'numpy.ndarray'> for field crop is not allowed: use default_factory",
     "version_mismatch"),
    ("RuntimeError: DataLoader worker (pid 12) is killed by signal: Killed.", "host_out_of_memory"),
    ("RuntimeError: at::Tensor fused_attn(at::Tensor, int) failed to dispatch data type Float", "dtype_mismatch"),
    ("RuntimeError: models/vae/config.json does not exist", "component_missing"),
    ("ImportError: cannot import name 'FooVideoDDIMScheduler' from 'diffusers'", "version_mismatch"),
    ("ImportError: cannot import name 'FooVideoPipeline' from 'diffusers'", "pipeline_unavailable"),
    ("cannot import AutoEncoderKLFooVideo", "pipeline_unavailable"),
    ("ValueError: Attention Processor class FooAttnProcessor2_0 is not supported by xFuser", "version_mismatch"),
    ("With GGUF main model the VACE model must also be a GGUF model", "invalid_input"),
    # Left alone: another signal, a plain sentence about importing.
    ("RuntimeError: DataLoader worker (pid 12) is killed by signal: Segmentation fault.", "unknown"),
    ("I cannot import my workflow into the new version", "unknown"),
])
def test_categories_of_the_sixth_batch(text, category):
    assert diagnose(text).category == category, diagnose(text).to_text()


@pytest.mark.parametrize(("text", "stage"), [
    ("Loading Original Transformer...\nsocket.gaierror: [Errno 11001] getaddrinfo failed", "load"),
    ("KSampler The size of tensor a (48) must match the size of tensor b (16) at non-singleton dimension 1", "denoise"),
    ("ComfyUI-foo 1.2.0 is not compatible with foo 1.1.0", "load"),
    # An app's module calling torch.cuda as it is imported: start-up, a load.
    ('Traceback (most recent call last):\n  File "/app/main.py", line 3, in <module>\n    import memory\n'
     '  File "/app/memory.py", line 8, in <module>\n    gpu = torch.device(torch.cuda.current_device())\n'
     '  File "/env/site-packages/torch/cuda/__init__.py", line 363, in _lazy_init\n'
     '    raise AssertionError("Torch not compiled with CUDA enabled")\nAssertionError: Torch not compiled with CUDA enabled',
     "load"),
    # ... but the script's own top level is where the run happens: no stage from it.
    ('Traceback (most recent call last):\n  File "/app/run.py", line 3, in <module>\n    x = make()\n'
     'RuntimeError: boom', "unknown"),
    # A paste in one pair of backticks.
    ('`  File "/env/site-packages/torch/nn/modules/module.py", line 804, in _apply\n    param_applied = fn(param)\n'
     'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 22.00 MiB.`', "to_device"),
    # A registry building the model from its config.
    ('Traceback (most recent call last):\n  File "/app/infer.py", line 18, in <module>\n    ENGINE.build(cfg)\n'
     '  File "/app/utils/registry.py", line 55, in build_from_config\n    raise KeyError(f"{t} not found")\n'
     "KeyError: 'x not found in ENGINE registry'", "load"),
])
def test_stage_rules_of_the_sixth_batch(text, stage):
    assert diagnose(text).stage == stage, diagnose(text).to_text()


@pytest.mark.parametrize(("text", "category", "stage"), [
    # A script run by runpy, or a module imported lazily inside a running function, is no start-up.
    ('Traceback (most recent call last):\n  File "/usr/lib/python3.10/runpy.py", line 196, in _run_module_as_main\n'
     '    return _run_code(code, main_globals, None,\n  File "/usr/lib/python3.10/runpy.py", line 86, in _run_code\n'
     '    exec(code, run_globals)\n  File "/app/gen.py", line 40, in <module>\n'
     '    latents = torch.randn(shape, generator=g, device="cuda")\n'
     "RuntimeError: CUDA error: an illegal memory access was encountered", "accelerator_fault", "unknown"),
    ('Traceback (most recent call last):\n  File "/app/wgp.py", line 4200, in generate_video\n    samples = m.generate(\n'
     '  File "/app/any2video.py", line 600, in generate\n    from .posemb import rope\n'
     '  File "/app/posemb.py", line 12, in <module>\n    freqs = compute(1024)\n'
     '  File "/app/posemb.py", line 8, in compute\n    return torch.outer(t, f)\n'
     "RuntimeError: CUDA error: misaligned address", "accelerator_fault", "unknown"),
    # diffusers' argument checks keep their backticks.
    ("`prompt` must be provided.", "invalid_input", "unknown"),
    ("ERROR:root:`max_sequence_length` cannot be greater than 512 but is 1024", "invalid_input", "unknown"),
    # "cannot import X" inside a sentence is no title: the message after it decides.
    ("Cannot import WanVideoWrapper module for custom nodes: No module named 'sageattention'", "missing_dependency",
     "load"),
    ("cannot import T5Tokenizer: sentencepiece is not installed", "missing_dependency", "unknown"),
    ("I cannot import Wan2GP's presets into the new version", "unknown", "unknown"),
    ("cannot import FlowMatchEulerDiscreteScheduler", "version_mismatch", "unknown"),
    ("cannot import WanVideoPipeline from diffusers", "pipeline_unavailable", "load"),
    # A model family's version is no package's release.
    ("ValueError: num_frames=80 is not compatible with Wan 2.1: must be 4k+1", "invalid_input", "unknown"),
    # An output or a user's file that does not exist is no model part missing.
    ("ValueError: prompts/my_prompts.json does not exist", "unknown", "unknown"),
    # Offloading and unloading are no load; a timing log and a sentence are no loading call.
    ("Offloading current model to CPU\nRuntimeError: boom", "unknown", "unknown"),
    ("[INFO] Skipping loading main model: already loaded\nRuntimeError: boom", "unknown", "unknown"),
    ("[timing] from_pretrained: 12.31s\nRuntimeError: boom", "unknown", "unknown"),
    # list, dict and set defaults were refused before Python 3.11 too.
    ("ValueError: mutable default <class 'list'> for field sizes is not allowed: use default_factory", "unknown",
     "unknown"),
    # A package's name as a plain word or a file's extension; a known package later in the text.
    ("FileNotFoundError: models/unet/wan2.1-t2v-14b-Q4_K_M.gguf not found", "component_missing", "load"),
    ("ValueError: pattern regex not found in prompt", "unknown", "unknown"),
    ("Warning: preset not found, using default. triton not found, torch.compile disabled", "missing_dependency",
     "unknown"),
    ("RuntimeError: XFormersAttnProcessor is not supported by this GPU (compute capability 6.1)", "unknown", "unknown"),
    ("ValueError: header version must be GGUF v3, got v2", "unknown", "unknown"),
    ("RuntimeError: failed to dispatch data type for device mps", "unknown", "unknown"),
])
def test_the_sixth_batchs_rules_after_review(text, category, stage):
    d = diagnose(text)
    assert (d.category, d.stage) == (category, stage), d.to_text()


def test_a_frame_at_the_margin_takes_only_source_as_its_line():
    from wan_nb.diagnosis.tracetext import parse

    frames = parse('Traceback (most recent call last):\nFile "/app/run.py", line 10, in <module>\n'
                   'File "/app/prep.py", line 20, in resize_and_crop\n'
                   "cv2.error: OpenCV(4.8.0) :-1: error: (-5:Bad argument) in function 'resize'").errors[0].frames
    assert [f.code for f in frames] == ["", ""]
    frames = parse('File "/c/nodes.py", line 1, in sample\nweight, bias = self.get_weights(x.dtype)\n'
                   "RuntimeError: boom").errors[0].frames
    assert frames[0].code == "weight, bias = self.get_weights(x.dtype)"


@pytest.mark.parametrize(("text", "category", "stage"), [
    ("Error 1455", "host_out_of_memory", "unknown"),
    ("运行到一半进程已杀死", "host_out_of_memory", "unknown"),
    ("RuntimeError: Invalid path: /workspace/YOURFOLDER/train", "component_missing", "load"),
    ("!!! Exception during processing !!! GGUF magic invalid", "unknown", "load"),
    # ComfyUI's node titles in Chinese, and fullwidth brackets typed by a Chinese input method.
    ("K采样器(高级)Given groups=1, weight of size 【5120, 36, 1, 2, 2】, expected input【1, 16, 21, 60, 104】 to have 36 "
     "channels, but got 16 channels instead", "invalid_input", "denoise"),
    ("VAE解码\nRuntimeError: boom", "unknown", "vae_decode"),
    ("CLIP文本编码器\nRuntimeError: boom", "unknown", "text_encode"),
    ("我的工作流报错了\nRuntimeError: boom", "unknown", "unknown"),
    # A reporter's "line ~420" keeps its frame.
    ('File "/app/models/wan/modules/model.py", line ~420, in forward\n  c = self.vace(hint, x)\n'
     "RuntimeError: The size of tensor a (7800) must match the size of tensor b (9360) at non-singleton dimension 1",
     "unknown", "denoise"),
])
def test_rules_of_the_seventh_batch(text, category, stage):
    d = diagnose(text)
    assert (d.category, d.stage) == (category, stage), d.to_text()


_TB = 'Traceback (most recent call last):\n  File "/c/ComfyUI/execution.py", line 1, in execute\n    x()\n'


@pytest.mark.parametrize(("text", "category", "stage"), [
    # Chinese sentences that hold 加载, 采样, 编码 or 解码 are no node titles.
    ("正在加载自定义节点...\ngot prompt\n 45%|████▌     | 9/20 [01:00<01:10, 6.0s/it]\n" + _TB
     + "RuntimeError: CUDA error: an illegal memory access was encountered", "accelerator_fault", "denoise"),
    ("100%|██████████| 30/30 [05:00<00:00, 10.0s/it]\n" + _TB
     + "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n我换了采样器也一样",
     "out_of_memory", "vae_decode"),
    ("KSampler\n加载失败\nRuntimeError: boom", "unknown", "denoise"),
    ("视频编码失败\n" + _TB + "BrokenPipeError: [Errno 32] Broken pipe", "unknown", "unknown"),
    ("编码错误\nUnicodeDecodeError: 'utf-8' codec can't decode byte 0xb2 in position 10: invalid start byte",
     "unknown", "unknown"),
    # 已杀死 where a shell prints it or quoted as the message, not in a sentence about dmesg.
    ("dmesg里没有已杀死的记录，显存不够报 CUDA out of memory", "out_of_memory", "unknown"),
    ("[1]+  已杀死               python generate.py", "host_out_of_memory", "unknown"),
    ("错误 1455：页面文件太小", "host_out_of_memory", "unknown"),
    # An invalid path at the end of the message, not a route.
    ("ValueError: Invalid path: /v1/chat is not a registered route", "unknown", "unknown"),
])
def test_the_seventh_batchs_rules_after_review(text, category, stage):
    d = diagnose(text)
    assert (d.category, d.stage) == (category, stage), d.to_text()


def test_fullwidth_parentheses_stay_in_the_paths_the_evidence_shows(tmp_path):
    folder = tmp_path / "m（新）"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"vae": ["diffusers", "AutoencoderKLWan"], '
                                             '"transformer": ["diffusers", "WanTransformer3DModel"]}')
    d = diagnose(f"OSError: Error no file named model_index.json found in directory {folder}")
    assert str(folder) in d.evidence.get("missing_path", ""), d.to_text()
