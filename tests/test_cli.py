import json
import subprocess
import sys

import pytest

from wan_nb.cli import main


def test_analyze_json_on_synthetic_preset(synth_path, capsys):
    assert main(["analyze", str(synth_path("wan2.1-t2v-1.3b")), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in data["components"]}
    assert by_name["transformer"]["parameters"] == 1_418_996_800
    assert data["pipeline_class"] == "WanPipeline"


def test_analyze_text_lists_components(tiny_path, capsys):
    assert main(["analyze", str(tiny_path("wan2.1-t2v"))]) == 0
    out = capsys.readouterr().out
    assert "transformer" in out and "AutoencoderKLWan" in out


def test_analyze_problems_exit_1(tiny_path, model_copy, capsys):
    from wan_nb.fixtures import faults

    path = model_copy(tiny_path("wan2.1-t2v"))
    faults.remove_component(path, "vae")
    assert main(["analyze", str(path)]) == 1
    assert "problem: vae: folder vae/ is missing" in capsys.readouterr().out


@pytest.mark.parametrize("setup", ["missing", "no_index", "bad_json"])
def test_unusable_folder_is_one_line_and_exit_2(tmp_path, setup):
    path = tmp_path / "model"
    if setup != "missing":
        path.mkdir()
    if setup == "bad_json":
        (path / "model_index.json").write_text("{not json")
    out = subprocess.run([sys.executable, "-m", "wan_nb.cli", "analyze", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wan-nb analyze: error:") and "Traceback" not in out.stderr


def test_bad_option_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["synth", "x", "--preset", "wan9"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_tiny_and_synth_write_folders(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), "--preset", "wan2.2-ti2v-5b"]) == 0
    assert (tmp_path / "s" / "model_index.json").is_file()
    assert main(["tiny", str(tmp_path / "t"), "--variant", "wan2.1-t2v"]) == 0
    assert (tmp_path / "t" / "transformer" / "config.json").is_file()
    assert main(["analyze", str(tmp_path / "t")]) == 0


def test_diagnose_file_and_stdin(tmp_path, capsys):
    log = tmp_path / "log.txt"
    log.write_text(
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.11/site-packages/diffusers/models/autoencoders/autoencoder_kl_wan.py", line 1, in decode\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
        "23.64 GiB of which 1.00 GiB is free.\n"
    )
    assert main(["diagnose", str(log), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["category"] == "out_of_memory" and data["stage"] == "vae_decode"
    assert data["suggested"][0] == "vae_tiling"
    out = subprocess.run([sys.executable, "-m", "wan_nb.cli", "diagnose", "-"], input=log.read_text(),
                         capture_output=True, text=True)
    assert out.returncode == 0 and "out_of_memory" in out.stdout


def test_diagnose_missing_file_exits_2(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "none.txt")]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_estimate_json_and_bad_strategy(synth_path, capsys):
    path = str(synth_path("wan2.1-t2v-1.3b"))
    args = ["estimate", path, "--height", "480", "--width", "832", "--frames", "81"]
    assert main([*args, "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--strategy", "model_cpu_offload+vae_tiling", "--json"]) == 0
    offloaded = json.loads(capsys.readouterr().out)
    assert plain["source"] == offloaded["source"] == "estimate"
    assert offloaded["peak_bytes"] < plain["peak_bytes"]
    assert main([*args, "--strategy", "bogus"]) == 2
    assert "Unknown memory strategy `bogus`" in capsys.readouterr().err
