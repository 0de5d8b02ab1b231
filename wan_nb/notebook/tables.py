"""A DataFrame as a person reads it in a notebook: sizes in one unit named in the header, no NaN, nothing cut.

``report.to_frame()`` keeps raw bytes and NaN (right for computing with); pandas' notebook
view shows them as they are and cuts text at 50 characters. :func:`readable` returns the
same table for reading: each ``*_bytes`` column in the binary unit its largest value reads
best in, the unit in the header (``estimated peak (MiB)``); whole numbers with thousands
separators; missing values blank; text whole and wrapped.
"""

from __future__ import annotations

from typing import Any

from wan_nb.notebook import _html


def _unit(values: list[float]) -> tuple[float, str]:
    top = max((abs(v) for v in values if v == v), default=0)
    for power, name in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if top >= 1024**power:
            return float(1024**power), name
    return 1.0, "B"


def _is_bytes(name: str) -> bool:
    return name.endswith("_bytes") or name == "bytes"


class Readable:
    """A table for reading: ``text/html`` (styled) and ``text/plain`` (whole columns), both formatted."""

    def __init__(self, frame: Any, caption: str | None = None) -> None:
        self.caption = caption
        self.frame = _formatted(frame)

    def to_text(self) -> str:
        import pandas as pd

        with pd.option_context("display.max_colwidth", None, "display.width", 250, "display.max_columns", None):
            text = self.frame.to_string(index=_named_index(self.frame))
        return f"{self.caption}\n{text}" if self.caption else text

    def to_html(self) -> str:
        frame = self.frame.reset_index() if _named_index(self.frame) else self.frame
        text_columns = tuple(c for c in frame.columns if frame[c].map(lambda v: len(str(v))).max() > 40)
        table = _html.styled_table(frame, status_columns=("status",), text_columns=text_columns)
        caption = f"<div><b>{_html.inline(self.caption)}</b></div>" if self.caption else ""
        return f'<div class="wan-nb" style="font-family: sans-serif;">{caption}{table}</div>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def __repr__(self) -> str:
        return self.to_text()


def _named_index(frame: Any) -> bool:
    return any(name is not None for name in frame.index.names)


def _formatted(frame: Any) -> Any:
    frame = frame.copy()
    if _named_index(frame) and frame.index.nlevels > 1:
        frame = frame.reset_index()
    renames = {}
    for column in list(frame.columns):
        values = frame[column]
        name = str(column)
        if _is_bytes(name) and values.dtype.kind in "iuf":
            scale, unit = _unit(values.astype(float).tolist())
            frame[column] = values.map(lambda v, s=scale: "" if v != v or v is None else f"{v / s:,.2f}")
            base = name[: -len("_bytes")] if name.endswith("_bytes") else name
            renames[column] = f"{base.replace('_', ' ')} ({unit})".strip()
        elif values.dtype.kind == "f":
            whole = values.dropna()
            if len(whole) and (whole == whole.round()).all():
                frame[column] = values.map(lambda v: "" if v != v else f"{int(v):,}")
            else:
                frame[column] = values.map(lambda v: "" if v != v else f"{v:,.4g}")
        elif values.dtype.kind in "iu":
            frame[column] = values.map(lambda v: f"{int(v):,}")
        elif values.dtype.kind != "b":  # text (object or pandas' str dtype): missing shows as nothing
            frame[column] = values.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v))
    return frame.rename(columns=renames)


def readable(frame: Any, caption: str | None = None) -> Readable:
    """``frame`` formatted for reading (see the module docstring); ``caption`` names what the numbers are."""
    return Readable(frame, caption)
