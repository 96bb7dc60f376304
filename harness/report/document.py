"""Write the report: report.md and a self-contained report.html (figures embedded as PNG data) from the same blocks.

The document is a plain list of blocks (heading, paragraph, table, figure) built
once from :mod:`harness.report` tables and :mod:`harness.report.figures` figures; the
Markdown and HTML writers walk the same list, so both carry the same tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import report
from harness.formatting import format_bytes
from harness.records import NO_LEAK
from harness.report import figures as plots
from harness.report.writers import (
    Block,
    Figure,
    Heading,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from harness.storage import Run


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
    figures = [b.path for b in blocks if isinstance(b, Figure)]
    return ReportFiles(html=html_path, markdown=markdown_path, figures=figures)


def build_blocks(runs: Sequence[Run], out_dir: Path, samples_run: str | None, seed_variant: str) -> list[Block]:
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
    timed = table[(table["leak"] == NO_LEAK) & table["epochs_per_s"].notna() & table["alone"]]
    if len(timed):
        blocks.append(
            _figure(
                plots.plot_speed(table, out_dir / "speed.png", report.ordered_variants(runs)),
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
    "and timed samples); for runs that started processes, children is the most alive at once and peak tree PSS "
    "the largest proportional set size of the worker with all of them (shared pages shared out). A verdict "
    "judged on another series than the worker's RSS names it. Epochs/s counts the time spent in `train_epoch` "
    '(not the pauses of a traced run\'s snapshots); "shared" marks a run that shared the machine with other runs '
    "of a sweep, whose speed the speed figures leave out. Accuracy is the share of the "
    '30 test images classified right after the last epoch; correct_prob is the seed\'s "accuracy": the mean '
    "probability given to the correct class."
)


def _overview(table: pd.DataFrame) -> str:
    """One sentence: how many runs of which variants, and how they ended."""
    if table.empty:
        return "No runs."
    statuses = ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().sort_index().items())
    variants = ", ".join(dict.fromkeys(table["variant"].astype(str)))
    leaks = table[table["leak"] != NO_LEAK]
    verdicts = ", ".join(f"{n} {v}" for v, n in leaks["verdict"].value_counts().sort_index().items()) or "none"
    fixed = table[table["leak"] == NO_LEAK]
    fixed_verdicts = ", ".join(f"{n} {v}" for v, n in fixed["verdict"].value_counts().sort_index().items()) or "none"
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
            Paragraph(f"No leak-free `{variant}` runs recorded `correct_prob`: the seed's plots are left out.")
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
                f"{format_bytes(gained, signed=True)} from epoch {trace.get('baseline_epoch')} to epoch "
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


def _figure(path: Path, name: str, title: str, caption: str) -> Figure:
    """A drawn figure as a block."""
    return Figure(name=name, path=path, title=title, caption=caption)
