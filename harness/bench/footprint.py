"""The worker's memory before any loop is built: what the harness itself costs, against bare Python and NumPy.

Each figure is the RSS (VmRSS) of a fresh interpreter right after its imports,
the median of a few processes: ``python -c pass``, ``python -c "import numpy"``,
and the modules the trainer has imported when it starts loading the loop (the
worker's entry point, its training and script sides).  The worker's probe also
says which of the heavy libraries it has loaded: pandas and matplotlib must
never be among them (tests/unit/test_layout.py holds the imports to that).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

# What each probe imports; the worker's list is what the trainer holds before it loads the loop.
PROBES = {
    "python": "pass",
    "numpy": "import numpy",
    "worker": "import harness.worker.__main__, harness.worker.train, harness.worker.script",
}
HEAVY = ("numpy", "pandas", "matplotlib", "torch")
_REPORT = """
import json, sys
rss = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"rss": rss, "loaded": [name for name in %r if name in sys.modules]}))
"""


@dataclass(frozen=True)
class Footprint:
    """RSS in bytes of bare Python, Python with NumPy, and the worker before its loop; what the worker loaded."""

    python: int
    numpy: int
    worker: int
    worker_loaded: tuple[str, ...]  # which of HEAVY the worker had imported

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for ``bench --json``."""
        return {
            "python_rss_bytes": self.python,
            "numpy_rss_bytes": self.numpy,
            "worker_rss_bytes": self.worker,
            "worker_loaded": list(self.worker_loaded),
        }


def _probe(imports: str, environment: Mapping[str, str]) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", imports + "\n" + _REPORT % (HEAVY,)],
        capture_output=True,
        text=True,
        env=dict(environment),
        timeout=120,
        check=True,
    )
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    return int(reply["rss"]), list(reply["loaded"])


def measure_footprint(environment: Mapping[str, str], repeats: int = 3) -> Footprint | None:
    """The medians over ``repeats`` fresh processes of each probe; None where /proc is missing or a probe fails."""
    if not sys.platform.startswith("linux"):
        return None
    rss: dict[str, list[int]] = {name: [] for name in PROBES}
    loaded: list[str] = []
    try:
        for _ in range(repeats):
            for name, imports in PROBES.items():
                value, heavy = _probe(imports, environment)
                rss[name].append(value)
                if name == "worker":
                    loaded = heavy
    except (subprocess.SubprocessError, OSError, ValueError, KeyError):
        return None
    median = {name: int(statistics.median(values)) for name, values in rss.items()}
    return Footprint(median["python"], median["numpy"], median["worker"], tuple(loaded))
