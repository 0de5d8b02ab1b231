"""A recovery as one self-contained HTML page: its reports, and its plot embedded as a PNG."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; }} pre {{ background: #f5f5f5;
padding: 8px; overflow-x: auto; }} h2 {{ margin-top: 1.6em; }}</style></head>
<body><h1>{title}</h1>
{sections}
</body></html>
"""


def report_document(sections: list[tuple[str, Any]], *, title: str = "wan_nb report", figure: Any = None) -> str:
    """An HTML page with one section per ``(heading, report)``, and ``figure`` (a matplotlib Figure) embedded."""
    from wan_nb.notebook.display import figure_png, to_html

    parts = []
    for heading, obj in sections:
        body = to_html(obj) if not isinstance(obj, str) else f"<pre>{html.escape(obj)}</pre>"
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}")
    if figure is not None:
        data = base64.b64encode(figure_png(figure)).decode("ascii")
        parts.append(f'<h2>Memory</h2>\n<img alt="estimated and measured peak memory" src="data:image/png;base64,{data}">')
    return _PAGE.format(title=html.escape(title), sections="\n".join(parts))


def save_report(report: Any, path: str | Path, *, extra: list[tuple[str, Any]] | None = None) -> Path:
    """Write a RecoveryReport (and ``extra`` sections before it) as a standalone HTML page with its plot."""
    from wan_nb.plots import plot_report

    path = Path(path)
    sections = [*(extra or []), ("Recovery", report)]
    path.write_text(report_document(sections, title="wan_nb recovery report", figure=plot_report(report)),
                    encoding="utf-8")
    return path
