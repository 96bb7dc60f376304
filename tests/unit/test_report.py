"""The report in-process: tables from stored fixture runs (golden), figures, report.md and report.html.

The command in a subprocess is in tests/integration/test_report.py.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import statistics
from pathlib import Path

import pytest

from harness import report, storage
from harness.errors import UsageError
from harness.formatting import format_speed
from harness.report import document as render
from harness.report import writers as render_formats
from harness.storage import Run
from tests.helpers import FIXTURE_RUNS, assert_golden

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LISTS_FIXED = "20261127T181754-lists-noleak-s0-fedb87"


@pytest.fixture(scope="module")
def runs(fixture_runs: list[Run]) -> list[Run]:
    """Every stored fixture run (tests/conftest.py)."""
    return fixture_runs


@pytest.fixture(scope="module")
def written(runs: list[Run], tmp_path_factory: pytest.TempPathFactory) -> render.ReportFiles:
    """The report of the fixture runs, written once for the tests that read it."""
    return render.write_report(runs, tmp_path_factory.mktemp("report"))


def by_name(runs: list[Run], part: str) -> Run:
    """The one fixture run whose directory name contains ``part``."""
    (found,) = [r for r in runs if part in Path(r.path).name]
    return found


def read_csv(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows, read with the csv module alone (independently of the loader)."""
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_the_per_run_table_matches_its_golden_text(runs: list[Run]) -> None:
    # GIVEN the fixture runs WHEN the per-run table is built and rendered THEN it is as reviewed
    table = report.run_table(report.sort_runs(runs))
    assert_golden("run_table.md", render_formats.markdown_table(report.format_run_table(table)) + "\n")


def test_the_seed_table_matches_its_golden_text(runs: list[Run]) -> None:
    assert_golden("seed_table.md", render_formats.markdown_table(report.seed_table(runs)) + "\n")


def test_the_trace_table_matches_its_golden_text(runs: list[Run]) -> None:
    # GIVEN the traced runs WHEN their top sites and growing types are tabulated THEN as reviewed
    traced = report.traced_runs(runs)
    assert traced, "the fixtures need a traced run"
    text = "\n\n".join(
        f"{r.meta['run_id']}\n{render_formats.markdown_table(report.trace_table(r))}\ntypes: {report.growing_types(r)}"
        for r in traced
    )
    assert_golden("trace_tables.md", text + "\n")


def test_the_seed_table_numbers_agree_with_the_csv_files_read_independently(
    runs: list[Run],
) -> None:
    # GIVEN the CNN runs of the seed's experiment, read with the csv module alone
    rows_at: dict[int, list[dict[str, str]]] = {200: [], 500: []}
    for run_dir in sorted(FIXTURE_RUNS.glob("*-numpy-noleak-*")):
        if (
            '"fc_only": true' in (run_dir / "meta.json").read_text()
            or len((run_dir / "epochs.csv").read_text().splitlines()) < 501
        ):
            continue
        with open(run_dir / "epochs.csv", newline="") as file:
            for row in csv.DictReader(file):
                if int(row["epoch"]) in rows_at:
                    rows_at[int(row["epoch"])].append(row)
    assert len(rows_at[200]) >= 2, "the fixtures need two CNN seeds of 500 epochs"
    # WHEN the seed table is built
    table = report.seed_table(runs).set_index("measure")["CNN: ours (numpy)"]
    # THEN its time, speed and mean correct_prob are those of the files
    time_200 = statistics.mean(float(r["elapsed_s"]) for r in rows_at[200])
    assert table["time for 200 epochs"] == f"{time_200:#.3g} s"
    assert table["epochs per second"] == format_speed(200 / time_200)
    mean_500 = statistics.mean(float(r["correct_prob"]) for r in rows_at[500])
    assert table["accuracy after 500 epochs (mean correct_prob)"].startswith(f"{100 * mean_500:.1f}%")
    assert f"n={len(rows_at[500])}" in table["accuracy after 500 epochs (mean correct_prob)"]


def test_the_per_run_numbers_come_from_the_run_files(runs: list[Run]) -> None:
    # GIVEN the lists leak run WHEN tabulated
    run = by_name(runs, "lists-recursion-s0-e3f659")
    row = report.run_table([run]).iloc[0]
    # THEN peak RSS is the largest RSS in any record, speed is epochs over train_epoch seconds,
    # final metrics are the last epoch's, and growth is the stored verdict's
    epochs = read_csv(Path(run.path) / "epochs.csv")
    samples = read_csv(Path(run.path) / "samples.csv")
    rss = [int(r["rss_bytes"]) for r in epochs]
    peaks = [int(r["peak_rss_bytes"]) for r in epochs]
    assert row["peak_rss_bytes"] == max(rss + peaks + [int(r["rss_bytes"]) for r in samples])
    seconds = sum(float(r["epoch_s"]) for r in epochs)
    assert row["epochs_per_s"] == pytest.approx(len(rss) / seconds)
    assert row["bytes_per_epoch"] == run.meta["growth"]["bytes_per_epoch"]
    assert row["verdict"] == run.meta["growth"]["verdict"] == "leak"
    assert row["correct_prob"] == pytest.approx(float(run.epochs["correct_prob"].iloc[-1]))


def test_growth_is_computed_when_a_run_has_none_stored(runs: list[Run]) -> None:
    # GIVEN a leak run whose meta.json has no growth analysis
    run = by_name(runs, "lists-recursion-s0-e3f659")
    bare = Run(run.path, {**run.meta, "growth": None}, run.epochs, run.samples, run.trace)
    # WHEN tabulated THEN the verdict is computed from its epochs, and agrees with the stored one
    assert report.growth_of(bare)["verdict"] == "leak"


def test_the_headline_sets_each_leak_beside_its_fixed_run_of_the_same_length(
    runs: list[Run],
) -> None:
    # WHEN the headline's panels are chosen
    panels = {p.variant: p for p in report.memory_panels(runs)}
    # THEN the lists leak is beside the 12-epoch fixed run, and the 500-epoch numpy runs are not beside the numpy leak
    assert [r.meta["leak"] for r in panels["lists"].leaky] == ["recursion"]
    assert {r.meta["epochs_planned"] for r in panels["lists"].fixed} == {12}
    numpy_leaky = panels["numpy"].leaky
    assert numpy_leaky and all(not r.meta["trace"] for r in numpy_leaky)
    assert {r.meta["epochs_planned"] for r in panels["numpy"].fixed} == {r.meta["epochs_planned"] for r in numpy_leaky}


def test_a_run_stopped_by_the_memory_cap_is_marked_at_its_stop(runs: list[Run]) -> None:
    # GIVEN the capped numpy leak run
    capped = [r for r in runs if r.meta["status"] == "memory_cap"]
    assert capped, "the fixtures need a run stopped by the memory cap"
    run = capped[0]
    # THEN the mark sits in the epoch after the last finished one, at the RSS the parent saw, under the cap line
    hit = report.cap_hit(run)
    assert hit is not None
    epoch, rss, cap = hit
    assert epoch == run.meta["stop"]["epoch"] + 1 == len(run.epochs) + 1
    assert rss == run.meta["stop"]["rss_bytes"] and cap == run.meta["memory_cap_bytes"]
    assert report.cap_hit(by_name(runs, "lists-noleak")) is None


def test_the_seed_plots_use_the_500_epoch_runs_only(runs: list[Run]) -> None:
    # WHEN the seed's curves are taken THEN the short leak-free partner runs are not among the seeds
    curves = report.seed_curves(runs)
    assert set(curves.groupby("run_id")["epoch"].max()) == {500}
    assert set(curves["model"]) == {"CNN", "fc-only"}


def test_the_samples_run_is_chosen_by_id_or_else_an_untraced_leak(
    runs: list[Run],
) -> None:
    chosen = report.pick_run(runs, None)
    assert chosen is not None and chosen.meta["leak"] and not chosen.meta["trace"]
    wanted = by_name(runs, "lists-noleak")
    assert report.pick_run(runs, wanted.meta["run_id"]) is wanted
    with pytest.raises(UsageError, match="--samples-run 'nope' is not among the reported runs"):
        report.pick_run(runs, "nope")


def test_run_directories_are_found_in_results_directories_once_each(runs: list[Run], tmp_path: Path) -> None:
    # GIVEN the fixtures directory and one of its runs named again
    one = Path(runs[0].path)
    # THEN each run is found once
    assert storage.find_run_dirs([FIXTURE_RUNS, one]) == storage.find_run_dirs([FIXTURE_RUNS])
    assert storage.find_run_dirs([one]) == [one]
    # AND a directory without runs, or a missing path, is refused with a clear line
    with pytest.raises(UsageError, match="no run directories in it"):
        storage.find_run_dirs([tmp_path])
    with pytest.raises(UsageError, match="not a run directory or a results directory"):
        storage.find_run_dirs([tmp_path / "missing"])


def test_the_report_files_are_written_with_every_figure_as_png(
    written: render.ReportFiles,
) -> None:
    # THEN the figures are PNG files, the headline and the seed's three plots among them
    names = {p.name for p in written.figures}
    assert {
        "memory.png",
        "samples.png",
        "seed_runs.png",
        "seed_means.png",
        "seed_time.png",
        "speed.png",
    } <= names
    for path in written.figures:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        assert 5_000 < path.stat().st_size < 400_000  # a drawn figure, small enough to commit


def test_the_html_report_is_self_contained_with_the_figures_inlined(
    written: render.ReportFiles,
) -> None:
    # GIVEN the HTML report
    html = written.html.read_text()
    # THEN it refers to nothing outside itself
    assert not re.search(r"""(?:src|href)=["'](?!data:)""", html)
    # AND each figure is an inlined PNG identical to its file
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == len(written.figures)
    assert sorted(base64.b64decode(i) for i in images) == sorted(p.read_bytes() for p in written.figures)


def test_markdown_and_html_carry_the_same_tables(written: render.ReportFiles) -> None:
    # GIVEN both reports
    markdown, html = written.markdown.read_text(), written.html.read_text()
    md_rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    html_rows = re.findall(r"<tr>(.*?)</tr>", html)
    # THEN every table row of one is a row of the other, cell for cell
    assert len(md_rows) == len(html_rows) > 20
    for md_row, html_row in zip(md_rows, html_rows):
        md_cells = [c.strip().replace("\\|", "|") for c in md_row.strip("|").split(" | ")]
        html_cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", html_row)]
        import html as html_module

        assert md_cells == [html_module.unescape(c) for c in html_cells]
    # AND the markdown links each figure file beside it
    for name in ("memory.png", "seed_runs.png"):
        assert f"]({name})" in markdown


def test_a_run_with_no_epoch_yet_is_listed_without_figures(tmp_path: Path) -> None:
    # GIVEN a run that has started but not finished an epoch (meta.json only, status running)
    run_dir = tmp_path / "runs" / "starting"
    run_dir.mkdir(parents=True)
    meta = json.loads((FIXTURE_RUNS / LISTS_FIXED / "meta.json").read_text())
    meta.update(run_id="starting", status="running", epochs_done=0, ended_at=None, growth=None)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    # WHEN reported
    files = render.write_report(storage.load_runs([run_dir]), tmp_path / "out")
    # THEN it has a row saying so, and no figure is drawn from nothing
    markdown = files.markdown.read_text()
    assert "| lists | CNN | none | 0 | 0/12 | running | inconclusive | - |" in markdown
    assert "nothing to draw" in markdown and files.figures == []


def test_an_unreadable_run_in_a_results_directory_is_left_out_with_its_reason(
    tmp_path: Path,
) -> None:
    # GIVEN a results directory with a good run and one written by a future schema
    shutil.copytree(FIXTURE_RUNS / LISTS_FIXED, tmp_path / "good")
    shutil.copytree(FIXTURE_RUNS / LISTS_FIXED, tmp_path / "future")
    meta = json.loads((tmp_path / "future" / "meta.json").read_text())
    (tmp_path / "future" / "meta.json").write_text(json.dumps(meta | {"schema_version": 99}))
    # WHEN the results directory is loaded THEN the good run is there and the other is named as left out
    skipped: list[str] = []
    runs = storage.load_runs([tmp_path], skipped)
    assert [Path(r.path).name for r in runs] == ["good"]
    assert len(skipped) == 1 and "schema_version 99" in skipped[0]
    # AND named directly, the unreadable run is an error
    with pytest.raises(UsageError, match="schema_version 99"):
        storage.load_runs([tmp_path / "future"], [])
