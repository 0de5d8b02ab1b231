import json
import struct

import pytest

from wan_nb.model.checkpoint import (
    CheckpointError,
    MissingFileError,
    find_weight_files,
    read_json,
    read_safetensors_header,
)


def _write_safetensors(path, tensors, *, data=True, header_len=None, raw_header=None):
    """A safetensors file written by hand: tensors is name -> (dtype code, shape, nbytes)."""
    header, offset = {}, 0
    for name, (code, shape, nbytes) in tensors.items():
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = raw_header if raw_header is not None else json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", header_len if header_len is not None else len(blob)))
        fh.write(blob)
        if data:
            fh.write(b"\0" * offset)
    return path


def test_header_matches_safetensors_own_writer(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"a": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.zeros(5)}, str(path))
    header = read_safetensors_header(path)
    assert header.tensors["a"].shape == (3, 4) and header.tensors["a"].dtype == "bfloat16"
    assert header.tensors["b"].nbytes == 20
    assert header.parameters == 17
    assert header.data_bytes == 3 * 4 * 2 + 20
    assert header.dtypes == ("bfloat16", "float32")
    assert header.header_bytes < path.stat().st_size


def test_sparse_file_reads_only_header(tmp_path):
    path = _write_safetensors(tmp_path / "big.safetensors", {"w": ("BF16", (1024, 1024, 1024), 2 * 1024**3)}, data=False)
    with open(path, "r+b") as fh:  # make it sparse: the right apparent size, no data
        fh.truncate(path.stat().st_size + 2 * 1024**3)
    header = read_safetensors_header(path)
    assert header.parameters == 1024**3
    assert path.stat().st_blocks * 512 < 1024**2


def test_truncated_file_names_file_and_numbers(tmp_path):
    path = _write_safetensors(tmp_path / "t.safetensors", {"w": ("F32", (100,), 400)}, data=False)
    with pytest.raises(CheckpointError) as info:
        read_safetensors_header(path)
    message = str(info.value)
    assert "t.safetensors is truncated" in message and "promises 400 bytes" in message
    assert "re-download" in message and info.value.path == str(path)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"header_len": 2**60}, "beyond safetensors"),
        ({"raw_header": b"this is not json at all"}, "not safetensors JSON"),
        ({"raw_header": b"[1, 2, 3]"}, "not safetensors JSON"),
        ({"raw_header": b'{"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}'}, "unreadable header entry"),
        ({"header_len": 10_000}, "truncated inside its header"),
    ],
)
def test_damaged_headers_give_clear_errors(tmp_path, kwargs, words):
    path = _write_safetensors(tmp_path / "bad.safetensors", {"w": ("F32", (1,), 4)}, **kwargs)
    with pytest.raises(CheckpointError, match=words):
        read_safetensors_header(path)


def test_short_and_empty_files(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="too few for a safetensors header"):
        read_safetensors_header(path)


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"a": 1,,}')
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON .*line 1"):
        read_json(bad)
    with pytest.raises(CheckpointError, match="not found"):
        read_json(tmp_path / "nothing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(CheckpointError, match="should hold a JSON object"):
        read_json(tmp_path / "list.json")


def test_find_weight_files_prefers_index_and_skips_variants(tmp_path):
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.fp16.safetensors"):
        _write_safetensors(tmp_path / name, {"w": ("F32", (1,), 4)})
    index = {"metadata": {"total_size": 8}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    weights, index_path = find_weight_files(tmp_path)
    assert [w.name for w in weights] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert index_path.name == "model.safetensors.index.json"

    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(MissingFileError, match="names shard model-00002-of-00002.safetensors"):
        find_weight_files(tmp_path)


def test_index_cannot_point_outside_folder(tmp_path):
    index = {"weight_map": {"a": "../secret.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    _write_safetensors(tmp_path.parent / "secret.safetensors", {"w": ("F32", (1,), 4)})
    with pytest.raises(MissingFileError):
        find_weight_files(tmp_path)
