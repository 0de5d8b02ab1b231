"""The user's own pipeline call (and load), as source text, for a snippet to repeat.

A snippet that says ``video = pipe(prompt=prompt)`` fails with ``NameError: prompt`` when
the notebook named its prompt ``p``, and quietly drops the negative prompt, the generator,
the image of an I2V call. So the snippet repeats the call the user made: every argument
they passed, under the names they used, with only what the strategy changes changed.

Two ways to know the source of an argument:

* :meth:`UserCall.from_values` works from the values the call received (the engine sees
  them, :mod:`wan_nb.recovery.observe`): a literal (str, number, bool, None, and lists,
  tuples and dicts of them) is written as itself, a ``torch.dtype`` as ``torch.bfloat16``, a
  ``torch.Generator`` by the name it is bound to or else as a new generator with its seed,
  anything else by the name the notebook binds it to. An object with no name cannot be
  written back; the snippet says so on that argument.
* :meth:`UserCall.with_source` reads the notebook cell the call came from (a cell is
  top-level code, so its names are the notebook's): each argument is then exactly what the
  cell wrote, ``load_image(url)`` included, and so is the statement around the call
  (``frames = pipe(...).frames[0]``).

Everything here is plain data: a :class:`UserCall` holds strings only.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["UserCall", "load_sources", "path_source", "source_of"]

_LITERALS = (str, bytes, int, float, complex, bool, type(None))


def _is_literal(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _LITERALS):
        return not isinstance(value, float) or value == value and abs(value) != float("inf")
    if depth > 3:
        return False
    if isinstance(value, (list, tuple)) and len(value) <= 64:
        return all(_is_literal(v, depth + 1) for v in value)
    if isinstance(value, dict) and len(value) <= 64:
        return all(_is_literal(k, depth + 1) and _is_literal(v, depth + 1) for k, v in value.items())
    return False


def _bound_name(value: Any, namespaces: Iterable[Mapping[str, Any]]) -> str | None:
    """A public name the notebook binds to this very object (IPython's ``_``, ``_3`` skipped)."""
    for ns in namespaces:
        for key, bound in ns.items():
            if bound is value and key.isidentifier() and not key.startswith("_"):
                return key
    return None


def _torch_kind(value: Any) -> str | None:
    module = type(value).__module__ or ""
    if not module.startswith("torch"):
        return None
    name = type(value).__name__
    return name if name in ("dtype", "Generator", "device") else None


def source_of(value: Any, namespaces: Iterable[Mapping[str, Any]] = ()) -> str | None:
    """Python source that gives ``value`` back in the notebook, or None when there is none.

    Strings prefer the notebook's name for them (``prompt``), so the snippet reads like the
    user's code; numbers are always literals (a small int is the same object under any name).
    """
    namespaces = list(namespaces)
    kind = _torch_kind(value)
    if kind == "dtype":
        return str(value)  # "torch.bfloat16"
    if kind == "device":
        return json.dumps(str(value))
    if isinstance(value, str) and not isinstance(value, bool):
        return _bound_name(value, namespaces) or repr(value)
    if _is_literal(value):
        return repr(value)
    name = _bound_name(value, namespaces)
    if name is not None:
        return name
    if kind == "Generator":
        # An inline `torch.Generator(...).manual_seed(n)`: the same seed starts the same noise.
        return f"torch.Generator(device={json.dumps(str(value.device))}).manual_seed({value.initial_seed()})"
    return None


def path_source(path: Any, namespaces: Iterable[Mapping[str, Any]] = ()) -> str | None:
    """The model path as the user wrote it: their variable when one holds that string, else the string."""
    if not path:
        return None
    for ns in namespaces:
        for key, value in ns.items():
            if isinstance(value, str) and value == str(path) and key.isidentifier() and not key.startswith("_"):
                return key
    return json.dumps(str(path))


def load_sources(cls_name: str, path: Any, kwargs: Mapping[str, Any],
                 namespaces: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The :class:`UserCall` fields of a ``cls_name.from_pretrained(path, **kwargs)`` the run made."""
    namespaces = list(namespaces)
    return {
        "load_class": cls_name,
        "load_path": path_source(path, namespaces),
        "load_arguments": {k: source_of(v, namespaces) for k, v in kwargs.items()
                           if k != "pretrained_model_name_or_path"},
    }


@dataclass(frozen=True)
class UserCall:
    """One pipeline call as the user wrote it, and the load of its pipeline when the run made it.

    ``arguments`` maps each argument the call received to its source (``None``: a value with
    no source, see :func:`source_of`); positional arguments are named by the pipeline's
    signature. ``before`` and ``after`` are the statement's text around the call
    (``"video = "``, ``".frames[0]"``). ``loads`` is True when the run loaded the pipeline
    itself, so a snippet must load it too; ``load_class``, ``load_path`` and ``load_arguments``
    are that load's (or, without one, what the pipeline says it was loaded from).
    """

    pipe: str = "pipe"
    arguments: dict[str, str | None] = field(default_factory=dict)
    before: str = "video = "
    after: str = ".frames[0]"
    loads: bool = False
    load_class: str | None = None
    load_path: str | None = None
    load_arguments: dict[str, str | None] = field(default_factory=dict)
    from_cell: bool = False

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_values(cls, pipe: str, kwargs: Mapping[str, Any], namespaces: Iterable[Mapping[str, Any]] = ()) -> UserCall:
        namespaces = list(namespaces)
        arguments = {k: source_of(v, namespaces) for k, v in kwargs.items()}
        after = "[0]" if kwargs.get("return_dict") is False else ".frames[0]"
        return cls(pipe=pipe, arguments=arguments, after=after)

    def with_source(self, source: str) -> UserCall:
        """The same call with its arguments and statement as ``source`` (a cell) writes them.

        Unchanged when the cell does not hold a call of ``self.pipe`` that it can read.
        """
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return self
        found = _find_call(tree, self.pipe)
        if found is None:
            return self
        statement, call = found
        text = lambda node: ast.get_source_segment(source, node) or ""  # noqa: E731
        arguments: dict[str, str | None] = {}
        positional = list(self.arguments)  # bound by the signature: the positional ones come first
        for i, arg in enumerate(call.args):
            if isinstance(arg, ast.Starred) or i >= len(positional):
                return self  # *args: the names cannot be matched to the values seen
            arguments[positional[i]] = text(arg)
        for keyword in call.keywords:
            if keyword.arg is None:
                return self  # **kwargs: keep the per-value sources, which name every key
            arguments[keyword.arg] = text(keyword.value)
        if set(arguments) != set(self.arguments):
            return self  # not the call the engine saw
        whole, inner = text(statement), text(call)
        cut = whole.find(inner)
        before, after = (whole[:cut], whole[cut + len(inner):]) if cut >= 0 else (self.before, self.after)
        if "\n" in before or "\n" in after:
            before, after = self.before, self.after  # a call inside a longer statement: keep ours
        return replace(self, arguments=arguments, before=before, after=after,
                       from_cell=True, **_load_from(tree, source, self))

    # -- writing -------------------------------------------------------------------------
    @property
    def unresolved(self) -> tuple[str, ...]:
        return tuple(k for k, v in {**self.load_arguments, **self.arguments}.items() if v is None)

    def call_line(self, pipe: str, changed: Mapping[str, str], dropped: Iterable[str] = ()) -> str:
        """The call statement with the strategy's ``changed`` arguments (and without ``dropped``)."""
        dropped = set(dropped)
        arguments = {k: v for k, v in self.arguments.items() if k not in dropped}
        arguments.update(changed)
        args = [f"{k}={_or_placeholder(k, v)}" for k, v in arguments.items()]
        return f"{self.before}{pipe}({', '.join(args)}){self.after}"

    def load_line(self, pipe: str, cls_name: str, path: str | None, changed: Mapping[str, str]) -> str:
        arguments = dict(self.load_arguments)
        for key in changed:
            # One precision argument: the strategy's replaces the user's (dtype or torch_dtype).
            if key in ("dtype", "torch_dtype"):
                arguments.pop("dtype", None)
                arguments.pop("torch_dtype", None)
        arguments.update(changed)
        where = self.load_path or (json.dumps(str(path)) if path else '"path/to/model"')
        args = [where, *(f"{k}={_or_placeholder(k, v)}" for k, v in arguments.items())]
        return f"{pipe} = {self.load_class or cls_name}.from_pretrained({', '.join(args)})"

    # -- plain data ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "pipe": self.pipe,
            "arguments": dict(self.arguments),
            "before": self.before,
            "after": self.after,
            "loads": self.loads,
            "load_class": self.load_class,
            "load_path": self.load_path,
            "load_arguments": dict(self.load_arguments),
            "from_cell": self.from_cell,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UserCall:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _or_placeholder(key: str, source: str | None) -> str:
    # A value with no source stands as a name after its argument: the snippet's header says
    # to bind it, and a NameError names it if that was missed (never a silent None).
    return source if source is not None else key


def _find_call(tree: ast.AST, pipe: str) -> tuple[ast.stmt, ast.Call] | None:
    """The first ``pipe(...)`` call at the cell's top level (inside ``with``/``if`` blocks too)."""
    for statement in _statements(tree.body):
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == pipe:
                return statement, node
    return None


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    for statement in body:
        if isinstance(statement, (ast.With, ast.If, ast.Try, ast.For)):
            yield from _statements(statement.body)
        elif not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield statement


def _load_from(tree: ast.AST, source: str, call: UserCall) -> dict[str, Any]:
    """The cell's ``pipe = X.from_pretrained(...)``, as written, when the cell loads the pipeline."""
    for statement in _statements(tree.body):
        if not isinstance(statement, ast.Assign) or not any(
                isinstance(t, ast.Name) and t.id == call.pipe for t in statement.targets):
            continue
        for node in ast.walk(statement.value):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "from_pretrained" and node.args
                    and not any(k.arg is None for k in node.keywords)):
                text = lambda n: ast.get_source_segment(source, n)  # noqa: E731
                return {"load_class": text(node.func.value), "load_path": text(node.args[0]),
                        "load_arguments": {k.arg: text(k.value) for k in node.keywords}}
    return {}
