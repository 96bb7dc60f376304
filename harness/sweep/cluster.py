"""``sweep --scheduler ADDRESS``: the runs as tasks on a Dask cluster; their run directories land here.

Every planned run is a task (:func:`harness.sweep.remote.perform_remote`) that
asks for worker resources: one ``slots`` and its cap in ``MiB`` (a timing run or
one judged on PSS: every slot of the largest worker), so a worker started with
``--resources "slots=N,MiB=M"`` performs at most N runs at once whose caps fit
M MiB.  What a task returns, the run directory's files, is written here only:
into ``.incoming-<id>`` first, renamed into place, meta.json last, so the run
appears whole.  One planned run lands at most once: a Dask worker lost
mid-run makes the scheduler start the task again elsewhere, and the run on the
lost worker stops with it (its parent-death signal) and is never sent back.
``local`` starts a one-worker cluster inside this process (threads: no nanny
processes, nothing added to the runs' environment, and the runs die with the
sweep).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from harness import sysinfo
from harness.errors import UsageError
from harness.storage import META
from harness.sweep import budget, launch, machine
from harness.sweep.claims import Claim
from harness.sweep.planned import PlannedRun
from harness.sweep.remote import MIB, perform_remote

# An unreachable scheduler is told within 10 s of the start, Python's and Dask's imports included.
CONNECT_TIMEOUT_S = 4
WORKERS_TIMEOUT_S = 4
# tcp:// or tls://, a host name, IPv4 or [IPv6] address, and an optional port.
ADDRESS = re.compile(r"(tcp|tls)://([^\s/:\[\]]+|\[[0-9A-Fa-f:.]+\])(:(?P<port>\d{1,5}))?")
INSTALL = "--scheduler needs Dask distributed: pip install 'leakbench[dask]'"


def check_address(address: str) -> str:
    """``local`` or ``tcp://HOST:PORT`` (``tls://`` too); UsageError quoting anything else."""
    match = ADDRESS.fullmatch(address)
    if address == "local" or (match and int(match["port"] or 8786) <= 65535):
        return address
    raise UsageError(f"expected local or tcp://HOST:PORT (or tls://HOST:PORT), got {address!r}")


class DaskPool:
    """A :class:`harness.sweep.launch.Backend` on a Dask cluster."""

    def __init__(self, address: str, sweep: str, results_dir: Path, jobs: int, budget_bytes: int) -> None:
        try:
            import distributed
        except ImportError:
            raise UsageError(INSTALL) from None
        self._distributed, self.sweep, self.results_dir = distributed, sweep, results_dir
        self.cluster: Any = None
        self._flight: dict[Any, tuple[int, PlannedRun, Claim, float]] = {}
        if address == "local":
            self.cluster = distributed.LocalCluster(
                n_workers=1,
                threads_per_worker=jobs,
                processes=False,
                resources={"slots": jobs, "MiB": budget_bytes // MIB},
                dashboard_address=None,
            )
            self.client = distributed.Client(self.cluster)
        else:
            try:
                self.client = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.address = address if address == "local" else self.client.scheduler.address
        self._workers = self._worker_resources()
        self.slots = sum(slots for slots, _ in self._workers)
        self.max_slots = max(slots for slots, _ in self._workers)
        self.default_cap = min(budget.share(mib * MIB, slots) for slots, mib in self._workers)
        self.environment = machine.client_environment()
        self.stop_event = f"leakbench-stop-{secrets.token_hex(6)}"

    def _worker_resources(self) -> list[tuple[int, int]]:
        """(slots, MiB) of every worker that declares both; UsageError when none does."""
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except (OSError, TimeoutError):
            self.close()
            raise UsageError(f"the Dask scheduler at {self.address} has no workers") from None
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        found = [w.get("resources") or {} for w in workers]
        declared = [(int(r["slots"]), int(r["MiB"])) for r in found if r.get("slots") and r.get("MiB")]
        if not declared:
            self.close()
            raise UsageError(
                f"the Dask workers at {self.address} declare no run slots: start each with "
                '--resources "slots=N,MiB=M" (N runs at once, whose memory caps fit M MiB)'
            )
        return declared

    def check(self, runs: Sequence[PlannedRun]) -> None:
        """UsageError when a run's cap is above every worker's MiB."""
        largest = max(mib for _, mib in self._workers) * MIB
        budget.check_fits(runs, largest, self.default_cap, "every Dask worker's MiB resource")

    def admits(self, run: PlannedRun) -> bool:
        """Always: the scheduler admits tasks by their resources."""
        return True

    def submit(self, index: int, run: PlannedRun, claim: Claim) -> None:
        """Send the run to the cluster as a task asking for its slots and its cap in MiB."""
        cap = budget.cap_of(run, self.default_cap)
        slots = self.max_slots if run.alone else 1
        placement = {
            "sweep": self.sweep,
            "scheduler": self.address,
            "slots": slots,
            "exclusive": run.alone,
            "cap_bytes": cap,
            "budget_bytes": cap,
            "environment": self.environment,
        }
        future = self.client.submit(
            perform_remote,
            run,
            placement,
            self.stop_event,
            key=f"leakbench-{run.key()}-{secrets.token_hex(4)}",
            pure=False,
            resources={"slots": slots, "MiB": -(-cap // MIB)},
        )
        self._flight[future] = (index, run, claim, time.monotonic())

    def busy(self) -> bool:
        """Whether a task is in flight."""
        return bool(self._flight)

    def finished(self, timeout: float | None) -> list[launch.Finished]:
        """The tasks that ended, their files landed here."""
        if not self._flight:
            return []
        try:
            done = self._distributed.wait(list(self._flight), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []
        ended = []
        for future in done:
            index, run, claim, begin = self._flight.pop(future)
            ended.append(launch.Finished(index, run, claim, self._land(future), time.monotonic() - begin))
        return ended

    def _land(self, future: Any) -> CompletedProcess[str]:
        """Write a finished task's run directory into the results directory; the ``harness run`` it stands for."""
        if future.status != "finished":
            return CompletedProcess([], -1, "", f"the Dask task {future.status}: {future.exception()!r}"[:500])
        payload = future.result()
        files, run_id = payload["files"], payload["run_id"]
        if run_id is None or META not in files:
            return CompletedProcess([], payload["returncode"], "", payload["stderr"])
        theirs = _leakbench_version(files[META])
        if theirs != sysinfo.versions()["leakbench"]:
            message = f"the worker's leakbench {theirs} is not this one's {sysinfo.versions()['leakbench']}"
            return CompletedProcess([], -1, "", f"not landed: {message}")
        final = self.results_dir / run_id
        incoming = self.results_dir / f".incoming-{run_id}-{secrets.token_hex(3)}"
        incoming.mkdir()
        for name, data in files.items():
            if name != META:
                (incoming / name).write_bytes(data)
        os.rename(incoming, final)  # a run directory has its meta.json last: it appears whole
        tmp = final / f".{META}.landing"
        tmp.write_bytes(files[META])
        os.replace(tmp, final / META)
        return CompletedProcess([], payload["returncode"], f"{final}\n", payload["stderr"])

    def stop(self) -> list[launch.Finished]:
        """Ask every task to stop its run (recorded as interrupted) and land what comes back within the grace period."""
        self._distributed.Event(self.stop_event, client=self.client).set()
        deadline = time.monotonic() + launch.STOP_GRACE_S + 5
        ended: list[launch.Finished] = []
        while self._flight and time.monotonic() < deadline:
            ended += self.finished(1.0)
        self.client.cancel(list(self._flight))
        return ended

    def close(self) -> None:
        """Let go of the client, and of the local cluster."""
        if self._flight:
            self.client.cancel(list(self._flight))
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _leakbench_version(meta: bytes) -> str | None:
    """versions.leakbench of a meta.json sent back."""
    import json

    try:
        return json.loads(meta).get("versions", {}).get("leakbench")
    except (ValueError, AttributeError):
        return None
