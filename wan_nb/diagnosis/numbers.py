"""The evidence in an error's text: allocator numbers (CUDA, HIP, XPU, MPS, ComfyUI, wan_nb's budget), versions."""

from __future__ import annotations

import re

from wan_nb.diagnosis.patterns import _I
from wan_nb.units import parse_bytes

# --- evidence: allocator numbers, devices, dtypes, versions -----------------------------------

_SIZE = r"(\d+(?:\.\d+)?)\s*(bytes|[KMGT]i?B|B)\b"
_TRIED = re.compile(r"(?:tried|trying) to allocate\s+" + _SIZE, _I)
_NEW_CAPACITY = re.compile(r"GPU (\d+) has a total capacit(?:y|ies) of\s+" + _SIZE +
                           r"(?:\s+of which\s+" + _SIZE + r"\s+is free)?", _I)
_PROCESS_USE = re.compile(r"this process has\s+" + _SIZE + r" memory in use", _I)
_OTHER_PROCESS = re.compile(r"Process \d+ has\s+" + _SIZE + r" memory in use", _I)
_ALLOC_SPLIT = re.compile(r"Of the allocated memory\s+" + _SIZE + r" is allocated by PyTorch,\s*(?:with\s+"
                          + _SIZE + r" allocated in private pools[^,]*,\s*)?and\s+" + _SIZE
                          + r" is reserved by PyTorch but unallocated", _I)
_OLD_CAPACITY = re.compile(r"\((?:GPU|device) (\d+);\s*" + _SIZE + r" total capacity;\s*" + _SIZE +
                           r" already allocated;\s*" + _SIZE + r" free;\s*(?:" + _SIZE + r" allowed;\s*)?"
                           + _SIZE + r" reserved in total by PyTorch", _I)
_MPS = re.compile(r"MPS allocated:\s*" + _SIZE + r",\s*other allocations:\s*" + _SIZE +
                  r",\s*max allowed:\s*" + _SIZE, _I)
_BUDGET = re.compile(r"budget(?: of| is|:|=)?\s+" + _SIZE, _I)
_EXACT_BYTES = re.compile(r"\s*\((\d+) bytes\)")
_IN_USE = re.compile(r"(?:in use|already (?:allocated|in use)|live)(?: of| is|:|=)?\s+" + _SIZE, _I)
_COMFY_REQUESTED = re.compile(r"Requested\s*:\s*" + _SIZE, _I)
_COMFY_LIMIT = re.compile(r"Device limit\s*:\s*" + _SIZE, _I)
_COMFY_ALLOCATED = re.compile(r"Currently allocated\s*:\s*" + _SIZE, _I)
_CPU_BYTES = re.compile(r"you tried to allocate (\d+) bytes", _I)
_NUMPY_ALLOC = re.compile(r"Unable to allocate\s+" + _SIZE + r" for an array", _I)
_DEVICE_OF_OOM = [
    (re.compile(r"\bHIP out of memory|hipErrorOutOfMemory|HIP error: out of memory", _I), "hip"),
    (re.compile(r"\bMPS backend out of memory|\bMPS\b.*out of memory", _I), "mps"),
    (re.compile(r"\bXPU out of memory", _I), "xpu"),
    (re.compile(r"\bNPU out of memory", _I), "npu"),
    (re.compile(r"budget", _I), "cpu (memory budget)"),
    (re.compile(r"not enough GPU video memory", _I), "directml"),
    (re.compile(r"\bCUDA\b|Allocation on device|CUBLAS|CUDNN|\bGPU\b", _I), "cuda"),
]


def _bytes(number: str, unit: str, *, binary: bool = False) -> int:
    unit = unit.strip()
    if unit.lower() == "bytes":
        return int(float(number))
    if binary and unit[-2:].upper() in ("KB", "MB", "GB", "TB") and "i" not in unit:
        unit = unit[0] + "iB"  # MPS prints binary sizes with decimal names
    try:
        return parse_bytes(f"{number}{unit}")
    except ValueError:
        return 0


def oom_numbers(message: str) -> dict[str, str | int | float]:
    """The allocator's own numbers, in bytes, plus the device it names."""
    facts: dict[str, str | int | float] = {}
    mps = _MPS.search(message)
    m = _TRIED.search(message)
    if m:
        facts["tried_to_allocate"] = _bytes(m[1], m[2], binary=bool(mps))
    if mps:
        facts["allocated_by_pytorch"] = _bytes(mps[1], mps[2], binary=True)
        facts["other_allocations"] = _bytes(mps[3], mps[4], binary=True)
        facts["total_capacity"] = _bytes(mps[5], mps[6], binary=True)
    m = _NEW_CAPACITY.search(message)
    if m:
        facts["device_index"] = int(m[1])
        facts["total_capacity"] = _bytes(m[2], m[3])
        if m[4]:
            facts["free"] = _bytes(m[4], m[5])
    m = _OLD_CAPACITY.search(message)
    if m:
        facts["device_index"] = int(m[1])
        facts["total_capacity"] = _bytes(m[2], m[3])
        facts["allocated_by_pytorch"] = _bytes(m[4], m[5])
        facts["free"] = _bytes(m[6], m[7])
        facts["reserved_by_pytorch"] = _bytes(m[10], m[11])
    m = _PROCESS_USE.search(message)
    if m:
        facts["process_in_use"] = _bytes(m[1], m[2])
    others = [_bytes(a, b) for a, b in _OTHER_PROCESS.findall(message)]
    if others:
        facts["other_processes_in_use"] = sum(others)
    m = _ALLOC_SPLIT.search(message)
    if m:
        facts["allocated_by_pytorch"] = _bytes(m[1], m[2])
        facts["reserved_unallocated"] = _bytes(m[5], m[6])
    m = _BUDGET.search(message)
    if m:
        facts["budget"] = facts["total_capacity"] = _bytes(m[1], m[2])
        exact = _EXACT_BYTES.match(message, m.end())  # wan_nb's budget also prints the exact count
        if exact:
            facts["budget"] = facts["total_capacity"] = int(exact[1])
        m = _IN_USE.search(message)
        if m:
            facts["in_use"] = _bytes(m[1], m[2])
    for pattern, key in ((_COMFY_REQUESTED, "tried_to_allocate"), (_COMFY_LIMIT, "total_capacity"),
                         (_COMFY_ALLOCATED, "allocated_by_pytorch")):
        m = pattern.search(message)
        if m and key not in facts:
            facts[key] = _bytes(m[1], m[2])
    m = _CPU_BYTES.search(message) or _NUMPY_ALLOC.search(message)
    if m and "tried_to_allocate" not in facts:
        facts["tried_to_allocate"] = int(m[1]) if m.re is _CPU_BYTES else _bytes(m[1], m[2])
    for pattern, device in _DEVICE_OF_OOM:
        if pattern.search(message):
            index = facts.get("device_index")
            facts["device"] = f"{device}:{index}" if index is not None and device in ("cuda", "hip") else device
            break
    return facts


_VERSION_LINE = re.compile(r"`?\b(diffusers|transformers|torch|PyTorch|accelerate|huggingface_hub|safetensors)`?"
                           r"(?:\s+version)?\s*(?::|==|=|\s)\s*v?(\d+\.\d+(?:\.\d+)?(?:[.+\-]?\w+)*)", _I)


def versions_in_text(lines: list[str]) -> dict[str, str]:
    """Versions a report states, e.g. diffusers-cli env output: "- `diffusers` version: 0.32.2"."""
    found: dict[str, str] = {}
    for line in lines:
        if "ersion" not in line and "==" not in line:  # "version", "Version"; cheap before the regex
            continue
        for name, version in _VERSION_LINE.findall(line):
            key = "torch" if name.lower() == "pytorch" else name.lower()
            found.setdefault(f"installed_{key}", version)
    return found
