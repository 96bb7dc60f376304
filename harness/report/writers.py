"""The report's blocks (heading, paragraph, table, figure) and how they are written: Markdown, HTML, plain text.

:mod:`harness.report.document` builds the list of blocks once; the writers here walk it,
so report.md and report.html carry the same tables.  ``text_table`` is the same
table for a terminal (``compare``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import formatting
from harness.formatting import MISSING, missing


@dataclass(frozen=True)
class Heading:
    """A section title."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """A line or two of plain text (backticks mark code, as in Markdown)."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of display strings."""

    frame: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    """A drawn figure: where it is, its title and a one-sentence caption for the report."""

    name: str
    path: Path
    title: str
    caption: str


Block = Heading | Paragraph | Table | Figure


# Markdown


def render_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown; figures are linked as the PNG files beside it."""
    parts: list[str] = []
    for index, block in enumerate(blocks):
        if isinstance(block, Heading):
            parts.append(("# " if index == 0 else "## ") + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(markdown_table(block.frame))
        else:
            parts.append(f"![{block.title}]({block.path.name})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's display strings."""
    header = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    """A table cell as text (``-`` for a missing number)."""
    return MISSING if value is None or (isinstance(value, float) and missing(value)) else str(value)


def text_table(frame: pd.DataFrame) -> str:
    """The frame's display strings as a plain fixed-width table for a terminal."""
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    return formatting.text_table([str(c) for c in frame.columns], rows, rule=True)


# HTML

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def render_html(blocks: Sequence[Block]) -> str:
    """The report as one HTML file: figures inlined as base64 PNG data, no external resources."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "leakbench report")
    body: list[str] = []
    for index, block in enumerate(blocks):
        if isinstance(block, Heading):
            tag = "h1" if index == 0 else "h2"
            body.append(f"<{tag}>{html.escape(block.text)}</{tag}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(html_table(block.frame))
        else:
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            body.append(
                f'<figure id="{html.escape(block.name)}"><img alt="{html.escape(block.title)}" '
                f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(block.title)}.</b> '
                f"{_inline(block.caption)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def html_table(frame: pd.DataFrame) -> str:
    """An HTML table of the frame's display strings, escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _inline(text: str) -> str:
    """Escape text and turn `backticks` into <code>, as Markdown would."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
