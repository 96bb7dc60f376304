"""Write the report: report.md and a self-contained report.html (figures embedded as PNG data) from the same blocks.

The document is a plain list of blocks (heading, paragraph, table, figure) built
once from :mod:`harness.report` tables and :mod:`harness.plots` figures; the
Markdown and HTML writers walk the same list, so both carry the same tables.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import plots, report
from harness.storage import Run


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


Block = Heading | Paragraph | Table | plots.FigureFile


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    markdown: Path
    figures: list[Path]


def write_report(
    runs: Sequence[Run],
    out_dir: Path,
    samples_run: str | None = None,
    seed_variant: str = "numpy",
) -> ReportFiles:
    """Draw the figures into ``out_dir`` and write report.md and report.html beside them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(runs, out_dir, samples_run, seed_variant)
    markdown_path = out_dir / "report.md"
    html_path = out_dir / "report.html"
    markdown_path.write_text(render_markdown(blocks), encoding="utf-8")
    html_path.write_text(render_html(blocks), encoding="utf-8")
    figures = [b.path for b in blocks if isinstance(b, plots.FigureFile)]
    return ReportFiles(html=html_path, markdown=markdown_path, figures=figures)


def build_blocks(
    runs: Sequence[Run], out_dir: Path, samples_run: str | None, seed_variant: str
) -> list[Block]:
    """Compute the tables, draw the figures into ``out_dir`` and lay them out as blocks, in reading order."""
    runs = report.sort_runs(runs)
    table = report.run_table(runs)
    blocks: list[Block] = [Heading("leakbench report"), Paragraph(_overview(table))]

    blocks += [Heading("Memory: leaky against fixed")]
    panels = report.memory_panels(runs)
    if not panels:
        blocks.append(Paragraph("No run has finished an epoch yet: nothing to draw."))
    else:
        blocks.append(
            _figure(
                plots.plot_memory_panels(panels, out_dir / "memory.png"),
                "memory",
                "Resident memory per epoch, leaky against fixed",
                "Resident set size (RSS) of the worker after each epoch. Red: the variant with its leak on; "
                "blue: the fixed default. A cross and a dashed line mark where the memory cap stopped a run.",
            )
        )
    chosen = report.pick_run(runs, samples_run)
    if chosen is not None:
        blocks.append(
            _figure(
                plots.plot_samples(chosen, out_dir / "samples.png"),
                "samples",
                f"Timed samples of {report.run_label(chosen)}",
                f"RSS sampled on a timer during run `{chosen.meta.get('run_id')}`; dotted lines are epoch starts, "
                "so peaks inside an epoch show between them.",
            )
        )

    blocks += [
        Heading("Runs"),
        Paragraph(RUN_TABLE_NOTE),
        Table(report.format_run_table(table)),
    ]
    timed = table[(table["leak"] == report.NO_LEAK) & table["epochs_per_s"].notna()]
    if len(timed):
        blocks.append(
            _figure(
                plots.plot_speed(
                    table, out_dir / "speed.png", report.ordered_variants(runs)
                ),
                "speed",
                "Speed of each implementation",
                "Epochs per second of the leak-free runs (time in `train_epoch`, median over repeats), log scale; "
                "dashed: the seed's Haskell list version on its 2017 laptop.",
            )
        )

    blocks += _seed_blocks(runs, out_dir, seed_variant)
    blocks += _trace_blocks(runs)
    return blocks


RUN_TABLE_NOTE = (
    "Growth per epoch is the robust trend of RSS after the detected warm-up, with its 95% interval; "
    "the verdict is `leak`, `flat` or `inconclusive`. Peak RSS is the largest resident size seen (epoch records "
    "and timed samples). Epochs/s counts the time spent in `train_epoch` (not the pauses of a traced run's snapshots). Accuracy is the share of the "
    '30 test images classified right after the last epoch; correct_prob is the seed\'s "accuracy": the mean '
    "probability given to the correct class."
)


def _overview(table: pd.DataFrame) -> str:
    """One sentence: how many runs of which variants, and how they ended."""
    if table.empty:
        return "No runs."
    statuses = ", ".join(
        f"{n} {s}" for s, n in table["status"].value_counts().sort_index().items()
    )
    variants = ", ".join(dict.fromkeys(table["variant"].astype(str)))
    leaks = table[table["leak"] != report.NO_LEAK]
    verdicts = (
        ", ".join(
            f"{n} {v}" for v, n in leaks["verdict"].value_counts().sort_index().items()
        )
        or "none"
    )
    fixed = table[table["leak"] == report.NO_LEAK]
    fixed_verdicts = (
        ", ".join(
            f"{n} {v}" for v, n in fixed["verdict"].value_counts().sort_index().items()
        )
        or "none"
    )
    return (
        f"{len(table)} runs of {variants} ({statuses}). "
        f"Verdicts of the leaky runs: {verdicts}; of the fixed runs: {fixed_verdicts}."
    )


def _seed_blocks(runs: Sequence[Run], out_dir: Path, variant: str) -> list[Block]:
    """The seed's table and its three plots, for the variant's leak-free runs."""
    curves = report.seed_curves(runs, variant)
    blocks: list[Block] = [
        Heading("The seed's experiment"),
        Paragraph(
            f"The seed's table (../shared/seed/SUMMARY.md: Haskell with lists on a 2017 laptop) beside our "
            f"`{variant}` runs without a leak (mean over seeds; sd = standard deviation between seeds, in "
            "percentage points). Time is wall-clock seconds from the first epoch's start, as the seed timed it. "
            "The seed's CNN run never reached epoch 500 because of its leak."
        ),
        Table(report.seed_table(runs, variant)),
    ]
    if curves.empty:
        blocks.append(
            Paragraph(
                f"No leak-free `{variant}` runs recorded `correct_prob`: the seed's plots are left out."
            )
        )
        return blocks
    means = report.mean_curves(curves)
    blocks += [
        _figure(
            plots.plot_seed_runs(curves, means, out_dir / "seed_runs.png"),
            "seed_runs",
            "Accuracy per epoch, every seed and the mean",
            "The seed's first plot: correct_prob on the test set after each epoch for each seed (thin) and "
            "their mean (black). When accuracy takes off varies from seed to seed, as in the seed.",
        ),
        _figure(
            plots.plot_seed_means(means, out_dir / "seed_means.png"),
            "seed_means",
            "Mean accuracy: CNN against fully-connected-only",
            "The seed's second plot: with only the fully connected layers learning, accuracy rises later.",
        ),
        _figure(
            plots.plot_seed_time(curves, means, out_dir / "seed_time.png"),
            "seed_time",
            "Accuracy against elapsed time",
            "The seed's last plot: the same runs against wall-clock seconds since training started.",
        ),
    ]
    return blocks


def _trace_blocks(runs: Sequence[Run]) -> list[Block]:
    """The top growing allocation sites of every traced run."""
    traced = report.traced_runs(runs)
    if not traced:
        return [
            Heading("Where the growth comes from"),
            Paragraph("No traced runs (run with `--trace` to record them)."),
        ]
    blocks: list[Block] = [Heading("Where the growth comes from")]
    for run in traced:
        trace = run.trace or {}
        gained = trace.get("heap_final_bytes", 0) - trace.get("heap_baseline_bytes", 0)
        blocks.append(
            Paragraph(
                f"{report.run_label(run)} (`{run.meta.get('run_id')}`): Python heap "
                f"{report.format_bytes(gained, signed=True)} from epoch {trace.get('baseline_epoch')} to epoch "
                f"{trace.get('final_epoch')}; the allocation sites that grew most:"
            )
        )
        blocks.append(Table(report.trace_table(run)))
        types = report.growing_types(run)
        if types:
            blocks.append(Paragraph(f"Live objects that grew most: {types}."))
        note = (run.meta.get("growth") or {}).get("note")
        if note:
            blocks.append(Paragraph(str(note)))
    return blocks


def _figure(path: Path, name: str, title: str, caption: str) -> plots.FigureFile:
    """A drawn figure as a block."""
    return plots.FigureFile(name=name, path=path, title=title, caption=caption)


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
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    """A table cell as text (``-`` for a missing number)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def text_table(frame: pd.DataFrame) -> str:
    """The frame's display strings as a plain fixed-width table for a terminal."""
    header = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
        for line in [header] + rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


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
