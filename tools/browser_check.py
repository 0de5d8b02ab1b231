"""The notebooks as a user sees them: JupyterLab in Chromium, Run All, save, reopen.

    python tools/browser_check.py --screenshots DIR [--notebooks notebooks] [NAME ...]

For each notebook (a temporary copy: the user's files are never touched) this opens it in
JupyterLab, runs all cells, waits until the kernel is idle and checks that

- every code cell ran (Run All did not stop at a failing cell);
- no cell failed except those tagged ``raises-exception``;
- no output reads "Error displaying widget" or "model not found";
- each ``%wan_recover`` cell (not ``--dry-run``) ended in its final state (recovered / not
  recovered, not "trying …");

then saves, shuts the kernel down, reopens the notebook and checks that the saved outputs
still show each recovery's outcome, on the page and in the file. Screenshots of every cell
with output go to DIR. The server listens on 127.0.0.1 with a random token and is stopped on
every way out (its whole process group: kernels too).

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``browser`` extra (selenium,
jupyterlab); ``./dev.sh browser`` installs them. It is a script, not a test module, so plain
pytest does not collect it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
WIDGET_ERRORS = ("Error displaying widget", "model not found")
# What a finished live table (or its static replacement) says; "trying `x`…" is the running state.
FINAL_STATES = ("Recovered with", "No strategy recovered", "no strategy was needed", "Interrupted")
RUNNING_STATE = re.compile(r"trying\s+\S+…")
WINDOW = (1400, 1000)


class CheckFailed(AssertionError):
    pass


def _first(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if os.path.exists(p)), None)


def missing_requirements() -> list[str]:
    """What the check needs and this machine lacks (empty when it can run)."""
    missing = []
    if _first(CHROMIUM) is None:
        missing.append("chromium (apt-get install chromium)")
    if _first(CHROMEDRIVER) is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    for module in ("selenium", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (pip install -e '.[browser]')")
    return missing


# -- the server ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(folder: Path) -> None:
    """User settings for this server only: every cell attached (screenshots), no news fetched."""
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class Server:
    """JupyterLab on 127.0.0.1 over ``root``, in its own process group so that stopping it stops its kernels."""

    def __init__(self, root: Path, state: Path, log: Path) -> None:
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        _lab_settings(state / "settings")
        env = dict(os.environ)
        env.update({
            "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "JUPYTER_CONFIG_DIR": str(state / "config"),
            "JUPYTER_DATA_DIR": str(state / "data"),  # the notebook-signing key, not the user's
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            "WAN_NB_FIXTURE_CACHE": env.get("WAN_NB_FIXTURE_CACHE",
                                            str(Path(tempfile.gettempdir()) / "wan_nb_notebook_fixtures")),
            "WAN_NB_HISTORY": str(state / "history.jsonl"),
        })
        env.pop("WAN_NB_NO_WIDGETS", None)  # the point is to see the widgets
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                   f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
                   "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True",
                   "--ServerApp.open_browser=False", "--LabApp.extension_manager=readonly",
                   "--LabApp.news_url=", "--ServerApp.terminals_enabled=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers and CI run as root
        self._log = log.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"JupyterLab exited with {self.process.returncode}; see {self._log.name}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            time.sleep(0.5)
        raise CheckFailed(f"JupyterLab did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()


# -- the browser ------------------------------------------------------------------------------------
def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=_first(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(240)
    return driver


# JupyterLab's own commands, through the app it exposes (`expose_app_in_browser`): the same
# commands the menus run. Each helper resolves a promise into `done`.
_JS_OPEN = """
const [path, done] = arguments;
const app = window.jupyterapp;
app.commands.execute('docmanager:open', {path: path, factory: 'Notebook'}).then(async (panel) => {
  await panel.context.ready; await panel.sessionContext.ready;
  window.__wan_panel = panel; done('ok');
}).catch(e => done('error: ' + e));
"""
_JS_RUN_ALL = """
const done = arguments[0];
const panel = window.__wan_panel;
panel.content.activeCellIndex = 0;
window.jupyterapp.shell.activateById(panel.id);
window.jupyterapp.commands.execute('notebook:run-all-cells').then(r => done('ok ' + r)).catch(e => done('error: ' + e));
"""
_JS_STATE = """
const panel = window.__wan_panel;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = [];
panel.content.widgets.forEach((cell, i) => {
  if (cell.model.type !== 'code') return;
  const outputs = cell.model.outputs.toJSON();
  cells.push({index: i, count: cell.model.executionCount, running: cell.model.executionState === 'running', source: cell.model.sharedModel.getSource(),
              tags: cell.model.getMetadata('tags') || [], prompt: cell.node.querySelector('.jp-InputPrompt')?.innerText || '',
              errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
              text: cell.node.querySelector('.jp-Cell-outputWrapper')?.innerText || ''});
});
return {kernel: kernel ? kernel.status : 'none', dirty: panel.context.model.dirty, cells: cells};
"""
_JS_SAVE_AND_CLOSE = """
const done = arguments[0];
const panel = window.__wan_panel;
(async () => {
  await panel.context.save();
  await panel.sessionContext.shutdown();
  panel.dispose();
  done('ok');
})().catch(e => done('error: ' + e));
"""
_JS_SCROLL = "window.__wan_panel.content.widgets[arguments[0]].node.scrollIntoView({block: 'start'});"
_JS_CELL = "return window.__wan_panel.content.widgets[arguments[0]].node;"


def _call(driver, script: str, *args) -> str:
    result = driver.execute_async_script(script, *args)
    if not str(result).startswith("ok"):
        raise CheckFailed(f"JupyterLab: {result}")
    return result


def _wait_idle(driver, timeout: float, run_all: bool = False) -> dict:
    """Until the kernel is idle and no cell is running or queued ([*]), three readings in a row.

    After a Run All, also until every code cell has run or one has failed (which stops Run
    All): the kernel reads idle for moments in the middle of a long cell (widget messages),
    and stopping it then would cut the run short.
    """
    deadline = time.monotonic() + timeout
    calm = 0
    state: dict = {}
    while time.monotonic() < deadline:
        state = driver.execute_script(_JS_STATE)
        busy = state["kernel"] != "idle" or any("*" in c["prompt"] or c["running"] for c in state["cells"])
        if run_all and not busy:
            busy = not (all(c["count"] is not None for c in state["cells"])
                        or any(c["errors"] and "raises-exception" not in c["tags"] for c in state["cells"]))
        calm = 0 if busy else calm + 1
        if calm >= 3:
            return state
        time.sleep(0.5)
    if run_all and state:
        return state  # the caller reports the cells that did not run
    raise CheckFailed(f"the kernel was still busy after {timeout:.0f} s")


def _is_recovery(source: str) -> bool:
    return bool(re.search(r"^\s*%%?wan_recover\b(?!.*--dry-run)", source, re.MULTILINE))


def _screenshots(driver, state: dict, folder: Path, stem: str, phase: str) -> None:
    for cell in state["cells"]:
        if not cell["text"].strip():
            continue
        driver.execute_script(_JS_SCROLL, cell["index"])
        time.sleep(0.15)
        driver.execute_script(_JS_CELL, cell["index"]).screenshot(str(folder / f"{stem}-{phase}-cell{cell['index']:02d}.png"))


def _check_run(state: dict, name: str) -> list[str]:
    problems = []
    for cell in state["cells"]:
        where = f"{name} cell {cell['index']}"
        if cell["count"] is None:
            problems.append(f"{where} did not run (Run All stopped before it)")
        if cell["errors"] and "raises-exception" not in cell["tags"]:
            problems.append(f"{where} failed: {cell['errors'][0][:200]}")
        problems += _check_outputs(cell, where)
    return problems


def _check_outputs(cell: dict, where: str) -> list[str]:
    problems = [f"{where} shows {e!r}" for e in WIDGET_ERRORS if e in cell["text"]]
    if _is_recovery(cell["source"]):
        if not any(s in cell["text"] for s in FINAL_STATES):
            problems.append(f"{where}: the %wan_recover table did not reach its final state")
        if RUNNING_STATE.search(cell["text"]):
            problems.append(f"{where}: the %wan_recover table still says it is trying a strategy")
    return problems


def _check_saved_file(path: Path) -> list[str]:
    """The saved file itself: each recovery cell's outputs carry the outcome as text and HTML, no live widget."""
    import nbformat

    problems = []
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not _is_recovery(cell.source):
            continue
        plain = " ".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        html = " ".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
        widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)
        where = f"{path.name} cell {i} (saved)"
        if widget:
            problems.append(f"{where} still holds a live widget (shows 'model not found' without its kernel)")
        if not any(s in plain for s in FINAL_STATES):
            problems.append(f"{where}: its text/plain does not say how the recovery ended")
        if not any(s in html for s in FINAL_STATES):
            problems.append(f"{where}: no HTML output says how the recovery ended")
    return problems


def check_notebook(driver, root: Path, name: str, shots: Path, timeout: float) -> list[str]:
    stem = Path(name).stem
    started = time.monotonic()
    _call(driver, _JS_OPEN, name)
    _wait_idle(driver, 60)
    _call(driver, _JS_RUN_ALL)
    state = _wait_idle(driver, timeout, run_all=True)
    time.sleep(0.5)  # the last widget updates arrive after the kernel reports idle
    state = driver.execute_script(_JS_STATE)
    problems = _check_run(state, name)
    _screenshots(driver, state, shots, stem, "run")
    _call(driver, _JS_SAVE_AND_CLOSE)
    problems += _check_saved_file(root / name)
    _call(driver, _JS_OPEN, name)
    reopened = _wait_idle(driver, 60)
    time.sleep(1.0)  # widget views render after the kernel is idle
    reopened = driver.execute_script(_JS_STATE)
    for cell in reopened["cells"]:
        problems += _check_outputs(cell, f"{name} cell {cell['index']} (reopened)")
    _screenshots(driver, reopened, shots, stem, "reopened")
    _call(driver, _JS_SAVE_AND_CLOSE)
    print(f"  {name}: {len(state['cells'])} code cells, {time.monotonic() - started:.0f} s, "
          f"{'ok' if not problems else f'{len(problems)} problem(s)'}", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file names (default: every notebooks/*.ipynb)")
    parser.add_argument("--notebooks", default=str(Path(__file__).resolve().parent.parent / "notebooks"))
    parser.add_argument("--screenshots", required=True, help="folder for the PNGs (created)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds one notebook's Run All may take")
    args = parser.parse_args(argv)
    missing = missing_requirements()
    if missing:
        print("browser check skipped: missing " + ", ".join(missing), file=sys.stderr)
        return 3
    source = Path(args.notebooks)
    names = args.names or sorted(p.name for p in source.glob("*.ipynb"))
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wan_nb_browser_"))
    root, state = work / "notebooks", work / "state"
    root.mkdir()
    for name in names:
        shutil.copy2(source / name, root / name)
    server = driver = None
    # SIGTERM / SIGHUP end the run through `finally`, so the server is always stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))
    problems: list[str] = []
    try:
        server = Server(root, state, work / "jupyterlab.log")
        server.wait_ready()
        driver = _browser()
        driver.get(f"{server.url}/lab?token={server.token}&reset")
        deadline = time.monotonic() + 60
        while not driver.execute_script("return !!(window.jupyterapp && window.jupyterapp.shell);"):
            if time.monotonic() > deadline:
                raise CheckFailed("JupyterLab's page did not start in the browser within 60 s")
            time.sleep(0.5)
        driver.execute_script("return window.jupyterapp.restored")
        time.sleep(1)
        print(f"browser check: JupyterLab {server.url} (127.0.0.1 only), screenshots in {shots}", flush=True)
        for name in names:
            found = check_notebook(driver, root, name, shots, args.timeout)
            problems += found
    except CheckFailed as exc:
        problems.append(str(exc))
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        if server is not None:
            server.stop()
            if problems:
                log = (work / "jupyterlab.log").read_text(errors="replace")[-3000:]
                print("--- end of the JupyterLab log ---\n" + log, file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("browser check: " + ("passed" if not problems else f"{len(problems)} problem(s)"), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
