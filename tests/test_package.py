import subprocess
import sys
import types

import wan_nb

HEAVY = ("torch", "diffusers", "transformers", "IPython", "ipywidgets", "matplotlib", "pandas")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        check=True, capture_output=True, text=True,
    )
    return set(out.stdout.split())


def test_import_is_light():
    loaded = _modules_after("import wan_nb")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_parser_is_light():
    loaded = _modules_after("from wan_nb.cli import build_parser; build_parser()")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_all_matches_public_names():
    for name in wan_nb.__all__:
        assert getattr(wan_nb, name) is not None, name
    # submodules become attributes once imported; they are reached as wan_nb.<module>
    public = {
        n for n in dir(wan_nb)
        if not n.startswith("_") and not isinstance(getattr(wan_nb, n), types.ModuleType)
    } - {"annotations", "Any", "load_ipython_extension", "unload_ipython_extension"}
    assert public <= set(wan_nb.__all__), public - set(wan_nb.__all__)


def test_unknown_attribute_is_an_attribute_error():
    try:
        wan_nb.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "wan_nb.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("analyze", "estimate", "diagnose", "demo", "tiny", "synth"):
        assert command in out.stdout
