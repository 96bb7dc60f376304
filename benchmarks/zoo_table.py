"""The field zoo's table: every case run untraced and traced, judged against its arithmetic truth.

    PYTHONPATH=. python benchmarks/zoo_table.py   # leaks and traps: untraced, --trace, --trace --trace-frames 1
    python benchmarks/zoo_table.py --fixed               # the fixed twins instead
    python benchmarks/zoo_table.py --cases LateLeak:late Sawtooth --modes plain

Each case of tests/fixtures/zoo.py (:data:`TRUTH`) runs as a user runs it,
``python -m harness run --variant tests/fixtures/zoo.py:CLASS [--leak LEAK] --epochs N --quiet``,
one run at a time, into a temporary results directory (``--results DIR`` keeps
them).  A cell is right when the verdict is the truth's, the slope is within
25 % of the arithmetic, the onset or the stop is found within 2 epochs, and the
top allocation site is the case's ``# LEAK:`` line.  Prints a Markdown table and
the share of cells right; ``--json FILE`` keeps the rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.formatting import format_size
from harness.storage import load_run
from tests.fixtures import zoo  # run from the checkout's root (PYTHONPATH=.), where the zoo lives with the tests

MODES = {"plain": [], "trace": ["--trace"], "trace1": ["--trace", "--trace-frames", "1"]}


def run_case(case: str, mode: str, results: Path) -> dict[str, Any]:
    """One run of a case in a mode: its verdict, slope, onset, stop and top site."""
    truth = zoo.TRUTH[case]
    name, _, leak = case.partition(":")
    args = ["--variant", f"{zoo.PATH}:{name}", "--epochs", str(truth.epochs), "--quiet", "--results", str(results)]
    args += ["--leak", leak] if leak else []
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "run", *args, *MODES[mode]], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return {"case": case, "mode": mode, "error": done.stderr.strip().splitlines()[-1:], "seconds": seconds}
    run = load_run(done.stdout.strip().splitlines()[-1])
    growth = run.meta["growth"]
    site = (run.trace or {}).get("sites", [{}])[0] if run.trace and run.trace.get("sites") else {}
    keeper = ((run.trace or {}).get("keepers") or [{}])[0]
    return {
        "case": case,
        "mode": mode,
        "verdict": growth["verdict"],
        "bytes_per_epoch": growth["bytes_per_epoch"],
        "onset": growth.get("onset"),
        "stop": (growth.get("stop") or {}).get("epoch"),
        "site": f"{Path(site['file']).name}:{site['line']}" if site else None,
        "site_line": site.get("line"),
        "keeper": keeper.get("path"),
        "seconds": round(seconds, 1),
        "run_dir": str(run.path),
    }


def right(row: dict[str, Any]) -> dict[str, bool | None]:
    """Which parts of a row match the truth (None where the truth says nothing)."""
    truth = zoo.TRUTH[row["case"]]
    if "error" in row:
        return {"verdict": False}
    verdict = row["verdict"] == ("leak" if truth.kind in ("leak", "late") else "flat")
    slope = None
    if truth.kind in ("leak", "late") and row["bytes_per_epoch"] is not None:
        slope = abs(row["bytes_per_epoch"] - truth.bytes_per_epoch) <= 0.25 * truth.bytes_per_epoch
    when = None
    if truth.onset is not None:
        when = row["onset"] is not None and abs(row["onset"] - truth.onset) <= 2
    elif truth.stop is not None:
        when = row["stop"] is not None and abs(row["stop"] - truth.stop) <= 2
    site = None
    if row["mode"] != "plain" and truth.kind != "flat" and not truth.native:
        site = row["site_line"] in zoo.leak_lines(row["case"])
    return {"verdict": verdict, "slope": slope, "when": when, "site": site}


def _cell(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"error: {row['error']}"
    marks = right(row)
    slope = "-" if row["bytes_per_epoch"] is None else format_size(row["bytes_per_epoch"])
    text = f"{row['verdict']} {slope}"
    if row["onset"] is not None:
        text += f", onset {row['onset']}"
    if row["stop"] is not None:
        text += f", stop {row['stop']}"
    if marks["site"] is not None:
        text += f", {row['site']}"
    wrong = [name for name, ok in marks.items() if ok is False]
    return text + (f" **WRONG: {', '.join(wrong)}**" if wrong else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--fixed", action="store_true", help="the fixed twins instead of the leaks and traps")
    parser.add_argument("--cases", nargs="+", help="cases of zoo.TRUTH (default: all of the set)")
    parser.add_argument("--results", type=Path, help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    cases = args.cases or [case for case in zoo.TRUTH if (zoo.TRUTH[case].fixed_twin) == args.fixed]
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or Path(tmp)
        rows = [run_case(case, mode, results) for case in cases for mode in args.modes]
    print("| case | truth | " + " | ".join(args.modes) + " | seconds |")
    print("|---|---|" + "---|" * len(args.modes) + "---|")
    for case in cases:
        mine = [row for row in rows if row["case"] == case]
        truth = zoo.TRUTH[case]
        cells = " | ".join(_cell(row) for row in mine)
        print(f"| {case} | {truth.summary} | {cells} | {sum(r['seconds'] for r in mine):.0f} |")
    checks = [ok for row in rows for ok in right(row).values() if ok is not None]
    print(f"\nright: {sum(checks)} of {len(checks)} checks")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
