"""One self-contained HTML page, built element by element.

Everything a page shows is inside the one file: inline CSS, images as ``data:`` URIs, no script, no
font or style sheet from elsewhere; a Content-Security-Policy forbids fetching anything, so a page
that opens from disk on a store PC looks the same as on a laptop with internet. The same calls give
the same bytes (no time stamp unless the caller passes one in ``footer``), so a page can be a DVC
output.

Text is escaped. :meth:`Page.paragraph` and :meth:`Page.note` take one piece of markup: ``**bold**``.
There is no way to put raw HTML in a page.
"""

from __future__ import annotations

import base64
import io
import mimetypes
import numbers
import os
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Nothing but inline styles and data: images may load, whatever ends up in the page.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """\
:root { color-scheme: light; }
body { margin: 0 auto; max-width: 60rem; padding: 1rem; font: 16px/1.5 system-ui, -apple-system,
  "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0.5rem 0 0.25rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid #ddd; }
h3, h4, h5, h6 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
.subtitle { color: #555; margin-top: 0; }
.note { border-left: 0.3rem solid #d98c00; background: #fff6e0; padding: 0.6rem 0.9rem; margin: 1rem 0; }
.table { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: 0.95rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: left; vertical-align: top; }
th { background: #f3f3f3; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.3rem; }
footer { margin-top: 3rem; padding-top: 0.5rem; border-top: 1px solid #ddd; color: #666; font-size: 0.85rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  .note { border: 1px solid #d98c00; }
  .table { overflow: visible; }
  figure, .note, tr { break-inside: avoid; }
}
"""
_BOLD = re.compile(r"\*\*(.+?)\*\*")
#: Cells that read as numbers ("5.3", "-1,204", "11.3%", "+2.0"): right-aligned like numeric columns.
_NUMBER = re.compile(r"[-+\u2212]?\d[\d,]*(\.\d+)?\s*%?")
MISSING = "\u2013"


def _text(text: str) -> str:
    """Escaped text with ``**bold**`` as <strong>: the one markup a page accepts."""
    return _BOLD.sub(r"<strong>\1</strong>", escape(text))


def _cell(value: object) -> str:
    """A cell as text: thousands separators, floats to 2 decimals, a dash where the value is missing."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    return f"{value:,}" if isinstance(value, numbers.Integral) else f"{value:,.2f}"


def _numeric(column: pd.Series, cells: list[str]) -> bool:
    """A column to right-align: numbers, or text that reads as numbers (missing cells aside)."""
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    return bool(cells) and all(cell == MISSING or _NUMBER.fullmatch(cell) for cell in cells)


def _row(tag: str, cells: list[str], align: list[str]) -> str:
    """One table row of escaped cells."""
    cells_html = "".join(f"<{tag}{a}>{escape(c)}</{tag}>" for c, a in zip(cells, align, strict=True))
    return f"<tr>{cells_html}</tr>"


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class Page:
    """A page for people: add headings, paragraphs, notes, tables and figures in reading order, then
    :meth:`write` it (or take :meth:`html`). ``footer`` says what produced the page and when (the
    caller passes the date: the page never reads the clock)."""

    def __init__(self, title: str, subtitle: str = "", footer: str = "") -> None:
        self.title, self.subtitle, self.footer = title, subtitle, footer
        self._body: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading; level 1 is the page title."""
        if not 2 <= level <= 6:
            raise ValueError(f"heading level {level}: 2 to 6 (1 is the title)")
        self._body.append(f"<h{level}>{escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        """Plain text, escaped; ``**bold**`` for the words to read first."""
        self._body.append(f"<p>{_text(text)}</p>")

    def note(self, text: str) -> None:
        """A highlighted box (the recommendation, a caveat), with the markup of :meth:`paragraph`."""
        self._body.append(f'<div class="note">{_text(text)}</div>')

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        """``frame`` as a table that scrolls sideways on a phone. Cells are escaped; numbers (numeric
        columns, or text that reads as a number) are right-aligned. Floats show 2 decimals: format a
        column as text for another precision. The index is shown unless it is the default 0, 1, ..."""
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
            frame = frame.reset_index()
        cells = [[_cell(value) for value in column] for _, column in frame.items()]
        align = [
            ' class="num"' if _numeric(frame[name], column) else ""
            for name, column in zip(frame.columns, cells, strict=True)
        ]
        head = _row("th", [str(name) for name in frame.columns], align)
        rows = "".join(_row("td", list(row), align) for row in zip(*cells, strict=True))
        caption_html = f"<caption>{escape(caption)}</caption>" if caption else ""
        self._body.append(
            f'<div class="table"><table>{caption_html}<thead>{head}</thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )

    def figure(self, fig: Figure, alt: str, caption: str = "") -> None:
        """A Matplotlib figure as an embedded PNG (no software tag, so the same figure gives the same
        bytes); the figure is closed."""
        import matplotlib.pyplot as plt  # only pages with figures need Matplotlib

        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
        finally:
            plt.close(fig)
        self._image(buffer.getvalue(), "image/png", alt, caption)

    def image(self, path: Path, alt: str, caption: str = "") -> None:
        """An image file (a PNG written by a stage, say) embedded in the page."""
        mime = mimetypes.guess_type(path.name)[0]
        if mime is None or not mime.startswith("image/"):
            raise ValueError(f"{path}: not an image file type")
        self._image(path.read_bytes(), mime, alt, caption)

    def _image(self, data: bytes, mime: str, alt: str, caption: str) -> None:
        caption_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
        self._body.append(
            f'<figure><img src="{_data_uri(data, mime)}" alt="{escape(alt)}">{caption_html}</figure>'
        )

    def html(self) -> str:
        """The whole page."""
        subtitle = f'<p class="subtitle">{escape(self.subtitle)}</p>' if self.subtitle else ""
        footer = f"<footer>{escape(self.footer)}</footer>\n" if self.footer else ""
        body = "\n".join(self._body)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f"<title>{escape(self.title)}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{escape(self.title)}</h1>{subtitle}</header>\n<main>\n{body}\n</main>\n"
            f"{footer}</body>\n</html>\n"
        )

    def write(self, path: Path) -> None:
        """Write the page atomically (a temporary file in the same folder, then a rename): a reader
        or a killed stage never sees half a page."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # open(): the umask's mode
        try:
            temporary.write_text(self.html(), encoding="utf-8", newline="\n")
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
