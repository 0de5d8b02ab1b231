"""A notebook cell as the zero-argument callable ``recover`` reruns.

The cell is compiled the way IPython compiles it (input transformers, AST transformers,
the ``__future__`` flags of earlier cells) and executed in the shell's own namespace, so
every variable it assigns stays set for the cells that follow. It is not passed back
through ``shell.run_cell``: that would fire ``post_run_cell`` (and the extension's own
hook) once per attempt, and it swallows the exception the engine needs to see.
"""

from __future__ import annotations

import ast
from typing import Any

from IPython.core.displayhook import DisplayHook


class CellRun:
    """Run ``source`` in ``shell.user_ns``; return its last expression's value, as a cell shows it.

    With ``track=True`` the names assigned by the first successful run are kept in
    :attr:`assigned`, so that after ``--explore`` (which reruns the cell once per strategy)
    the notebook is left with the winner's values, not the last attempt's.
    """

    def __init__(self, shell: Any, source: str, *, track: bool = False) -> None:
        self.shell = shell
        self.source = source
        self.track = track
        self.assigned: dict[str, Any] | None = None
        self.runs = 0
        transformed = shell.transform_cell(source)
        # Registering the source with IPython's compiler puts it in linecache: tracebacks
        # of failed attempts (and ``diagnose``, which reads them) show the cell's lines.
        filename = shell.compile.cache(transformed, shell.execution_count, raw_code=source)
        tree = shell.transform_ast(ast.parse(transformed, filename=filename))
        body = list(tree.body)
        last = body.pop() if body and isinstance(body[-1], ast.Expr) else None
        if last is not None and DisplayHook.semicolon_at_end_of_expression(transformed):
            # `x;` hides the value in a cell: the rerun does the same.
            body.append(last)
            last = None
        flags = shell.compile.flags
        self._body = compile(ast.Module(body=body, type_ignores=[]), filename, "exec", flags=flags, dont_inherit=True)
        self._last = None
        if last is not None:
            expression = ast.Expression(body=last.value)
            self._last = compile(expression, filename, "eval", flags=flags, dont_inherit=True)

    def __call__(self) -> Any:
        ns = self.shell.user_ns
        before = dict(ns) if self.track and self.assigned is None else None
        self.runs += 1
        exec(self._body, ns)
        value = eval(self._last, ns) if self._last is not None else None
        if before is not None:
            self.assigned = {k: v for k, v in ns.items() if k not in before or before[k] is not v}
        return value

    def pipeline_name(self) -> str:
        """The notebook's name for the pipeline the cell uses (for the snippet), else ``pipe``."""
        from wan_nb.notebook._release import is_pipeline

        code = self._body
        names = list(code.co_names)
        names += [n for const in code.co_consts if hasattr(const, "co_names") for n in const.co_names]
        for name in names:
            value = self.shell.user_ns.get(name)
            if value is not None and is_pipeline(value):
                return name
        return "pipe"

    def restore_assigned(self) -> None:
        """Put back the values the first successful run assigned (after later reruns)."""
        if self.assigned:
            self.shell.user_ns.update(self.assigned)
