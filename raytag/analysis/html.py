"""Minimal, escaped HTML for the report: sections, tables of dicts, embedded PNGs.

The page is self-contained (inline CSS, images as ``data:`` URIs) so it can be mailed,
archived or opened from object storage with nothing else. A small inline script records,
on the ``<body>``, how many images decoded (``data-images-ok`` of ``data-images``) and any
script error (``data-errors``): a person sees broken images anyway, a headless browser
check reads the attributes.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping, Sequence

__all__ = ["page", "section", "table", "image", "paragraph", "fmt"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} tr.sig td{background:#fff3cd}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} .note{color:#666;font-size:.85em}
"""

_SCRIPT = """
window.addEventListener('error', function (e) {
  document.body.dataset.errors = (document.body.dataset.errors || '') + e.message + ';';
});
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesOk = imgs.filter(function (i) {
    return i.complete && i.naturalWidth > 0; }).length;
});
"""


def fmt(value, digits: int = 3) -> str:
    """Numbers for people: NaN/None as an en dash, p-values in scientific notation."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "\u2013"
        return f"{value:.{digits}f}"
    return str(value)


def pvalue(p) -> str:
    """p-value: two significant figures, scientific below 0.001."""
    if p is None or not math.isfinite(p):
        return "\u2013"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def pm(mean, sd, digits: int = 3) -> str:
    """``mean +- sd`` with the SD dropped when undefined."""
    if sd is None or not math.isfinite(sd):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} \u00b1 {fmt(sd, digits)}"


Column = tuple[str, Callable[[Mapping], str]]


def table(rows: Sequence[Mapping], columns: Sequence[Column],
          row_class: Callable[[Mapping], str] | None = None, left: int = 1) -> str:
    """An HTML table: ``columns`` = (header, cell function); first ``left`` left-aligned."""
    if not rows:
        return '<p class="note">(no rows)</p>'
    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
                   for i, (h, _) in enumerate(columns))
    body = []
    for r in rows:
        cls = row_class(r) if row_class else ""
        cells = "".join(f'<td class="{"l" if i < left else ""}">{html.escape(f(r))}</td>'
                        for i, (_, f) in enumerate(columns))
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def paragraph(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{html.escape(text)}</p>'


def section(title: str, *parts: str, anchor: str = "") -> str:
    aid = f' id="{html.escape(anchor)}"' if anchor else ""
    return f"<section{aid}><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def page(title: str, *sections: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"<script>{_SCRIPT}</script></head><body><h1>{html.escape(title)}</h1>"
            f"{''.join(sections)}</body></html>")
