"""``%load_ext wan_nb``: the magics and the hook that remembers the last failed cell.

- ``%wan_recover [options]`` reruns the last failed cell under the recovery plan;
  ``%%wan_recover [options]`` runs its own cell and recovers it if it fails.
- ``%wan_analyze PATH``, ``%wan_estimate PATH --height H --width W --frames F`` and
  ``%wan_diagnose`` show the component table, the memory estimates and the last failure.

Loading imports neither torch nor diffusers; ``%unload_ext wan_nb`` removes the magics, the
hook, the display formatters and the names the magics put in the namespace.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from wan_nb.notebook import _options
from wan_nb.notebook._recorder import FailureRecorder
from wan_nb.notebook._release import release_failed_state

REPORT_NAME = "_wan_report"  # the last RecoveryReport, in the notebook's namespace
PLAN_NAME = "_wan_plan"  # the last --dry-run plan
NO_FAILURE = (
    "wan_nb: no failed cell to recover. `%wan_recover` reruns the last cell that failed after "
    "`%load_ext wan_nb`; run the failing cell first, or put `%%wan_recover` at the top of a cell "
    "to run it and recover it if it fails."
)


def _parse(magic: Any, line: str) -> Any:
    # magic_arguments raises UsageError for unknown options; a bare argparse exit (from
    # --help inside a line) would end the kernel's cell with SystemExit, so turn that into one too.
    try:
        return parse_argstring(magic, line)
    except SystemExit:
        raise UsageError(f"see `%{magic.__name__}?` for the options") from None


@magics_class
class WanMagics(Magics):
    """wan_nb's magics. ``widgets`` decides the live table's form (None: decide per frontend)."""

    def __init__(self, shell: Any, recorder: FailureRecorder) -> None:
        super().__init__(shell)
        self.recorder = recorder
        self.widgets: bool | None = None
        self.last_report: Any = None

    # -- %wan_recover / %%wan_recover ----------------------------------------------------------
    @magic_arguments()
    @argument("--budget", metavar="SIZE",
              help="rehearse a smaller device: every attempt runs under this memory budget "
                   "(16GiB, 512MB, bytes, or a share of the device such as 0.5)")
    @argument("--explore", action="store_true",
              help="try every strategy predicted to fit, not only up to the first success, and compare them")
    @argument("--dry-run", action="store_true",
              help="show the plan with its estimates and run nothing (the cell runs only up to its "
                   "pipeline call, with model loads replaced, to read the call's settings)")
    @argument("--strategies", metavar="A,B+C",
              help="consider only these strategies, comma-separated; '+' joins strategies used together")
    @argument("--force", action="store_true",
              help="with --strategies: try exactly those, in that order, even those predicted not to fit")
    @argument("--allow-degraded", action="store_true",
              help="allow strategies that change the output (fewer frames, lower resolution)")
    @argument("--allow-remote-code", action="store_true",
              help="allow running the model folder's own code (structural strategies)")
    @argument("--apply", action="store_true",
              help="keep the winner applied: the pipeline stays configured for the cells that follow")
    @argument("--insert", action="store_true", help="put the winning code into a new cell below")
    @argument("--no-replay", action="store_true",
              help="rerun every attempt in full, instead of decoding the failed run's latents again "
                   "(or reusing its prompt embeddings)")
    @argument("--models-dir", metavar="FOLDER",
              help="a folder of other models: donor components and local alternatives are looked for there")
    @line_cell_magic
    def wan_recover(self, line: str, cell: str | None = None) -> Any:
        """Rerun the last failed cell (``%wan_recover``) or this cell (``%%wan_recover``) under the plan.

        Each strategy of the plan is applied, the cell rerun and measured, the pipelines put
        back, until one works (all that fit with ``--explore``). The variables the successful
        run assigns stay set, and its value is this magic's value. Each failed attempt is one
        line of the table; the report is ``_wan_report`` (``.attempts[i].error_text`` has the
        full tracebacks, ``.snippet()`` the code that worked). Before the rerun the failed
        cell's traceback frames are cleared (they hold its memory), so ``%debug`` no longer
        reaches them.
        """
        args = _parse(self.wan_recover, line)
        kwargs = _options.recover_kwargs(args)
        if cell is None:
            failed = self.recorder.last
            if failed is None:
                print(NO_FAILURE, file=sys.stderr)
                return None
            source, diagnosis = failed.source, failed.diagnosis
            if failed.kept is not None and not args.dry_run:
                kwargs["kept"] = failed.kept
            if failed.recovered_by and not args.dry_run:
                print(f"wan_nb: {failed.label} was already recovered with `{failed.recovered_by}`; "
                      "running it again under the plan.")
        else:
            source, diagnosis = cell, None
        run = self._cell_run(source, track=args.explore)
        own = (getattr(diagnosis, "evidence", None) or {}).get("budget")
        if kwargs.get("budget") is None and isinstance(own, int) and own > 0:
            # The cell failed under its own memory_budget: plan and rehearse under the same
            # one, not under this machine's free RAM.
            kwargs["budget"] = own
            print(f"wan_nb: no --budget given: using the failed cell's own memory budget ({own:,} bytes).")
        if args.dry_run:
            return self._dry_run(run, diagnosis, kwargs)
        return self._recover(run, diagnosis, kwargs, args, is_cell=cell is not None)

    def _cell_run(self, source: str, track: bool) -> Any:
        from wan_nb.notebook._cell import CellRun

        try:
            return CellRun(self.shell, source, track=track)
        except SyntaxError as exc:
            hint = " Cells with top-level `await` cannot be rerun." if "await" in str(exc.msg) else ""
            raise UsageError(f"the cell cannot be rerun: {exc.msg} (line {exc.lineno}).{hint}") from None

    def _recover(self, run: Any, diagnosis: Any, kwargs: dict[str, Any], args: Any, is_cell: bool) -> Any:
        from wan_nb.notebook._quiet import library_progress_bars_off
        from wan_nb.notebook._wording import as_flags
        from wan_nb.notebook.live import LiveTable
        from wan_nb.recovery.engine import recover

        release_failed_state(self.shell)
        live = LiveTable(widgets=self.widgets, advice=as_flags)
        with self.recorder.paused(), library_progress_bars_off():
            report = recover(run, namespace=self.shell.user_ns, diagnosis=diagnosis,
                             on_start=live.start, on_attempt=live.add, **kwargs)
        self.recorder.drop_kept()
        self.last_report = report
        self.shell.user_ns[REPORT_NAME] = report
        if report.winner and args.explore:
            # Each explored attempt reran the cell: leave the winner's values, not the last run's.
            run.restore_assigned()
        if report.winner and not is_cell:
            self.recorder.mark_recovered(report.winner)
        if is_cell and not report.succeeded and not report.interrupted and report.diagnosis:
            # The body failed and stayed failed: `%wan_recover --allow-degraded` can take it up.
            from wan_nb.diagnosis import Diagnosis

            error = report.probe.error if report.probe is not None else ""
            self.recorder.remember(run.source, Diagnosis.from_dict(report.diagnosis), error or "",
                                   self.shell.execution_count)
        live.finish(report, f"The report is `{REPORT_NAME}`" if report.attempts or report.probe else "")
        if args.insert:
            self._insert(report, run)
        if report.interrupted:
            raise KeyboardInterrupt("wan_nb: recovery interrupted; the pipelines were put back as they were.")
        if not report.succeeded:
            from wan_nb.notebook._errors import CellNotRecovered

            raise CellNotRecovered(report)
        return report.result

    def _dry_run(self, run: Any, diagnosis: Any, kwargs: dict[str, Any]) -> Any:
        from wan_nb.recovery.engine import recover

        if diagnosis is None:
            from wan_nb.diagnosis import Diagnosis

            diagnosis = Diagnosis(category="out_of_memory", stage="unknown",
                                  summary="Not run yet: planned as if the cell ran out of memory.")
        from wan_nb.notebook._quiet import library_progress_bars_off

        kwargs = {**kwargs, "apply": False, "explore": False}
        # The failed run's frames would count as memory in use and shrink every prediction.
        release_failed_state(self.shell)
        with self.recorder.paused(), library_progress_bars_off():
            # max_attempts=0: the engine reads the call's settings and plans, then stops before
            # the first attempt, so the plan is the one a real run would follow.
            report = recover(run, namespace=self.shell.user_ns, diagnosis=diagnosis, max_attempts=0, **kwargs)
        self.shell.user_ns[PLAN_NAME] = report.plan
        if report.plan is None or not report.plan.candidates:
            # No plan to show (an error in the cell's own code is not retried): say why rather
            # than print nothing.
            from wan_nb.notebook._wording import as_flags

            category = (report.diagnosis or {}).get("category") or getattr(diagnosis, "category", None)
            why = " ".join(report.notes) or (report.plan.notes[0] if report.plan and report.plan.notes else "")
            print(as_flags(f"wan_nb: no plan for this failure ({category or 'unknown'}): "
                           + (why or "no strategy in the catalogue applies.")))
            if report.plan is None:
                return None
        return report.plan

    def _insert(self, report: Any, run: Any) -> None:
        if not report.winner:
            print("wan_nb: nothing to insert: no strategy was needed or none worked.")
            return
        self.shell.set_next_input(report.snippet(run.pipeline_name()), replace=False)
        print(f"wan_nb: the code for `{report.winner}` is in a new cell below.")

    # -- %wan_analyze ------------------------------------------------------------------------
    @magic_arguments()
    @argument("path", help="a diffusers model folder (holds model_index.json)")
    @argument("--deep", action="store_true", help="also build each component on the meta device")
    @line_magic
    def wan_analyze(self, line: str) -> Any:
        """The component table of a model folder, from its configs and safetensors headers."""
        from wan_nb.model.checkpoint import CheckpointError
        from wan_nb.model.components import analyze_model_components

        args = _parse(self.wan_analyze, line)
        try:
            return analyze_model_components(_path(args.path), deep=args.deep)
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None

    # -- %wan_estimate -------------------------------------------------------------------------
    @magic_arguments()
    @argument("path", help="a diffusers model folder (a real download or a synthetic checkpoint)")
    @argument("--height", type=int, required=True)
    @argument("--width", type=int, required=True)
    @argument("--frames", type=int, required=True)
    @argument("--steps", type=int, default=50)
    @argument("--guidance-scale", type=float, default=5.0)
    @argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    @argument("--device", default="cuda", choices=["cuda", "cpu"], help="the device the estimate is for")
    @argument("--strategies", metavar="A,B+C",
              help="estimate these strategies (default: as it is and each memory strategy)")
    @argument("--budget", metavar="SIZE", help="draw this budget on the plot and mark what exceeds it")
    @argument("--no-plot", action="store_true", help="the table only")
    @line_magic
    def wan_estimate(self, line: str) -> Any:
        """Predicted peak memory per strategy for a generation: a table and a plot."""
        from wan_nb.notebook.estimates import estimate_table

        args = _parse(self.wan_estimate, line)
        strategies = _options.strategies(args.strategies)
        budget = _options.budget(args.budget)
        if isinstance(budget, float):
            raise UsageError("`%wan_estimate --budget` takes a size such as 16GiB (a share needs a real device).")
        try:
            table = estimate_table(_path(args.path), height=args.height, width=args.width, frames=args.frames,
                                   steps=args.steps, guidance_scale=args.guidance_scale, dtype=args.dtype,
                                   device=args.device, strategies=strategies, budget=budget)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not args.no_plot:
            from IPython.display import display

            display(table)
            return table.plot()
        return table

    # -- %wan_diagnose -----------------------------------------------------------------------
    @line_cell_magic
    def wan_diagnose(self, line: str, cell: str | None = None) -> Any:
        """Explain the last failed cell; ``%%wan_diagnose`` explains a traceback pasted in the cell."""
        from wan_nb.diagnosis import diagnose

        if cell is not None:
            return diagnose(cell)
        if line.strip():
            raise UsageError("`%wan_diagnose` takes no arguments; paste a traceback under `%%wan_diagnose`.")
        failed = self.recorder.last
        if failed is None:
            print("wan_nb: no failed cell recorded since `%load_ext wan_nb`; run the failing cell, "
                  "or paste a traceback under `%%wan_diagnose`.", file=sys.stderr)
            return None
        return failed.diagnosis


def _path(text: str) -> str:
    return text.strip().strip("'\"")


# -- the extension ---------------------------------------------------------------------------------
class _Loaded:
    """What loading added to one shell."""

    def __init__(self, magics: WanMagics, recorder: FailureRecorder, formatters: Any) -> None:
        self.magics = magics
        self.recorder = recorder
        self.formatters = formatters


_LOADED: weakref.WeakKeyDictionary[Any, _Loaded] = weakref.WeakKeyDictionary()


def load_extension(shell: Any) -> WanMagics:
    """Register the magics, the ``post_run_cell`` hook and the display formatters (idempotent)."""
    if shell in _LOADED:
        return _LOADED[shell].magics
    from wan_nb.notebook import display

    recorder = FailureRecorder()
    magics = WanMagics(shell, recorder)
    shell.register_magics(magics)
    shell.events.register("pre_run_cell", recorder.started)
    shell.events.register("post_run_cell", recorder)
    _LOADED[shell] = _Loaded(magics, recorder, display.register(shell))
    return magics


def unload_extension(shell: Any) -> None:
    """Remove everything :func:`load_extension` added."""
    loaded = _LOADED.pop(shell, None)
    if loaded is None:
        return
    from wan_nb.notebook import display

    manager = shell.magics_manager
    for kind, names in loaded.magics.magics.items():
        for name in names:
            if manager.magics[kind].get(name) is not None and getattr(manager.magics[kind][name], "__self__", None) is loaded.magics:
                del manager.magics[kind][name]
    if manager.registry.get(type(loaded.magics).__name__) is loaded.magics:
        del manager.registry[type(loaded.magics).__name__]
    try:
        shell.events.unregister("post_run_cell", loaded.recorder)
        shell.events.unregister("pre_run_cell", loaded.recorder.started)
    except ValueError:
        pass  # already removed by the user
    display.unregister(shell, loaded.formatters)
    for name in (REPORT_NAME, PLAN_NAME):
        shell.user_ns.pop(name, None)


def extension_state(shell: Any) -> WanMagics | None:
    """The loaded magics of ``shell`` (their ``recorder`` and ``last_report``), or None."""
    loaded = _LOADED.get(shell)
    return loaded.magics if loaded is not None else None
