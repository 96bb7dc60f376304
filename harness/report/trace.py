"""The allocation sites and object types that grew in a traced run, as tables for the report.

Pure: runs in, pandas DataFrames and strings out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.formatting import format_bytes
from harness.storage import Run


def trace_table(run: Run, top: int = 10) -> pd.DataFrame:
    """The run's allocation sites that grew most (file, line, bytes and blocks gained), largest first."""
    sites = (run.trace or {}).get("sites") or []
    rows = sorted(sites, key=lambda s: s.get("size_diff", 0), reverse=True)[:top]
    return pd.DataFrame(
        {
            "site": [f"{_short_path(s['file'])}:{s['line']}" for s in rows],
            "grew": [format_bytes(s.get("size_diff", 0), signed=True) for s in rows],
            "blocks gained": [f"{int(s.get('count_diff', 0)):+,d}" for s in rows],
            "size now": [format_bytes(s.get("size", 0)) for s in rows],
        },
        columns=["site", "grew", "blocks gained", "size now"],
    )


def growing_types(run: Run, top: int = 5) -> str:
    """The object types whose live counts grew most: ``"list +2,355, tuple +396"`` (empty if none grew)."""
    types = (run.trace or {}).get("types") or []
    grown = sorted(
        (t for t in types if t.get("count_diff", 0) > 0),
        key=lambda t: t["count_diff"],
        reverse=True,
    )
    return ", ".join(f"{t['type']} {int(t['count_diff']):+,d}" for t in grown[:top])


def traced_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs that carry a trace.json with allocation sites."""
    return [r for r in runs if r.trace and r.trace.get("sites")]


def _short_path(path: str) -> str:
    """The last two parts of a source path, enough to find the file and short enough for a table."""
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path
