"""Read a model folder without reading its weights: JSON files and safetensors headers.

A safetensors file is an 8-byte little-endian header length, that many bytes of JSON
(tensor name -> dtype, shape, data offsets), then the raw data. ``safe_open`` mmaps the
whole file, which fails on sparse or partly downloaded files, so the header is read here
by hand: at most a few hundred kilobytes per file, whatever the file's size.

Errors are :class:`CheckpointError` with a message that names the file, says what is
wrong and what to do; the component analysis turns them into report problems.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# safetensors refuses headers above 100 MB itself (HeaderTooLarge); so do we.
MAX_HEADER_BYTES = 100_000_000

# safetensors dtype code -> (torch dtype name, bytes per element)
SAFETENSORS_DTYPES: dict[str, tuple[str, float]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "U16": ("uint16", 2),
    "U32": ("uint32", 4),
    "U64": ("uint64", 8),
    "BOOL": ("bool", 1),
    "F4": ("float4_e2m1fn_x2", 0.5),
}

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


class CheckpointError(Exception):
    """A model file or folder cannot be read as it stands.

    ``path`` is the file or folder at fault; the message says what is wrong and what to do.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        super().__init__(message)
        self.path = str(path) if path is not None else None


class MissingFileError(CheckpointError):
    """A file the folder's own index or layout says should be there is not."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # torch's name, e.g. "bfloat16"
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass(frozen=True)
class SafetensorsHeader:
    """What one safetensors file's header says, and whether the file holds it all."""

    path: str
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    header_bytes: int = 0  # 8 + JSON length: all that was read
    file_size: int = 0

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(sorted({t.dtype for t in self.tensors.values()}))


def read_json(path: str | os.PathLike[str], what: str | None = None) -> dict[str, Any]:
    """Read a JSON object, or raise a CheckpointError that names the file and the fix."""
    path = Path(path)
    label = what or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{label} not found: {path}.", path) from None
    except IsADirectoryError:
        raise CheckpointError(f"{label} should be a file but {path} is a folder.", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{label} cannot be read ({path}): {exc}.", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{label} is not valid JSON ({path}, line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "re-download it or fix the file by hand.",
            path,
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{label} should hold a JSON object but holds {type(data).__name__} ({path}).", path)
    return data


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Read and check one safetensors header; never reads tensor data."""
    path = Path(path)
    refetch = "re-download this file"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise CheckpointError(
                    f"{path.name} holds {len(prefix)} bytes, too few for a safetensors header "
                    f"(an interrupted download?): {refetch} ({path}).",
                    path,
                )
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise CheckpointError(
                    f"{path.name} declares a {length}-byte header, far beyond safetensors' "
                    f"{MAX_HEADER_BYTES}-byte limit: the file is damaged or not safetensors; {refetch} ({path}).",
                    path,
                )
            if 8 + length > size:
                raise CheckpointError(
                    f"{path.name} is truncated inside its header ({size} bytes on disk, header needs "
                    f"{8 + length}): {refetch} ({path}).",
                    path,
                )
            raw = fh.read(length)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"{path.name} cannot be read ({path}): {exc.strerror or exc}.", path) from None

    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"{path.name} has a header that is not safetensors JSON ({exc}): the file is damaged; {refetch} ({path}).",
            path,
        ) from None

    metadata = header.pop("__metadata__", None) or {}
    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for name, entry in header.items():
        try:
            code, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            dtype, itemsize = SAFETENSORS_DTYPES[code]
            shape = tuple(int(d) for d in shape)
            if begin < 0 or end < begin:
                raise ValueError("bad offsets")
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{path.name} has an unreadable header entry for tensor {name!r} ({exc!r}): {refetch} ({path}).",
                path,
            ) from None
        tensors[name] = TensorInfo(dtype=dtype, shape=shape, nbytes=int(end - begin))
        data_end = max(data_end, int(end))

    have = size - 8 - length
    if have < data_end:
        raise CheckpointError(
            f"{path.name} is truncated: its header promises {data_end} bytes of tensor data but the file "
            f"holds {max(have, 0)} ({size} bytes in all); {refetch} ({path}).",
            path,
        )
    return SafetensorsHeader(
        path=str(path),
        tensors=tensors,
        metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {},
        header_bytes=8 + length,
        file_size=size,
    )


def find_weight_files(folder: str | os.PathLike[str]) -> tuple[list[Path], Path | None]:
    """The weight files of one component folder, and its shard index if it has one.

    A ``*.safetensors.index.json`` wins (its shards are the weights); otherwise every
    safetensors file without a variant suffix (``model.fp16.safetensors`` is a variant
    that ``from_pretrained`` only loads when asked), then any other weight format.
    Raises CheckpointError when the index is unreadable or names a missing shard.
    """
    folder = Path(folder)
    entries = sorted(p for p in folder.iterdir() if p.is_file())
    indexes = [p for p in entries if p.name.endswith(".safetensors.index.json")]
    plain_indexes = [p for p in indexes if p.name.count(".") == 3] or indexes
    if plain_indexes:
        index_path = plain_indexes[0]
        index = read_json(index_path)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(
                f"{index_path.name} has no `weight_map`: the shard index is damaged; re-download it ({index_path}).",
                index_path,
            )
        shards: list[Path] = []
        for shard in dict.fromkeys(str(s) for s in weight_map.values()):
            shard_path = folder / shard
            if Path(shard).name != shard or not shard_path.is_file():
                raise MissingFileError(
                    f"{index_path.name} names shard {shard}, which is not in {folder}: download the "
                    "missing shard (or the whole folder) again.",
                    shard_path,
                )
            shards.append(shard_path)
        return shards, index_path
    weights = [p for p in entries if p.name.endswith(".safetensors")]
    plain = [p for p in weights if p.name.count(".") == 1]
    if plain or weights:
        return plain or weights, None
    return [p for p in entries if p.name.endswith(WEIGHT_SUFFIXES)], None
