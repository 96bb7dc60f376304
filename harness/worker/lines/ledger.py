"""Which line keeps the resident memory it gained: the accounting behind ``run --lines`` (pure: deltas in, rows out).

The line profiler (:mod:`harness.worker.lines.profiler`) reads RSS at every event of a
profiled function and charges the change since the previous reading to the
line that ran in between: each byte to one line, the innermost profiled one
(memory_profiler keeps a table per function and subtracts a reading of another
function's line, so a function's first line is charged the whole RSS each
call).  The sum of a line's changes is its *increment*, memory_profiler's
column.  An increment says what a line allocated, not what it kept: a line
that makes a temporary the next line frees gains as much every epoch as a leak
does.  So the ledger also keeps the live gains, newest last, and a fall in RSS
gives back a gain: the newest one of the same size (a freed block returns the
pages its allocation touched), else the newest ones (last in, first out).  What
is left of a line's gains is what it *kept*; a leak's line keeps its gain epoch
after epoch, and counts the epochs in which what it kept rose.
"""

from __future__ import annotations

from dataclasses import dataclass

Key = tuple[str, int]  # (file, line)
OUTSIDE: Key = ("<outside>", 0)  # between epochs, before the first profiled line: not a line of the loop
MATCH_WINDOW = 64  # newest live gains searched for one the size of a fall
MAX_LIVE = 100_000  # live gains kept one by one; the oldest are merged per line beyond this


@dataclass
class LineStat:
    """One line's account of RSS: its increment, what it kept, and in how many epochs that rose."""

    increment: int = 0
    kept: int = 0
    kept_at_epoch_start: int = 0
    grew_epochs: int = 0


class Ledger:
    """The accounts of every line since the baseline: charge RSS changes, close epochs, list the rows."""

    def __init__(self, page: int = 4096) -> None:
        self.page = page
        # The profiler counts runs and names functions itself (a line event is its commonest event).
        self.runs: dict[Key, int] = {}
        self.functions: dict[Key, str] = {}
        self.stats: dict[Key, LineStat] = {}
        self.live: list[list] = []  # [key, bytes], newest last
        self.untracked_release = 0  # falls with no gain since the baseline left to give back
        self.epochs = 0
        self._touched: set[Key] = set()

    def reset(self) -> None:
        """Forget everything (in place: the profiler holds the dicts)."""
        for table in (self.runs, self.functions, self.stats, self._touched):
            table.clear()
        self.live.clear()
        self.untracked_release = self.epochs = 0

    def stat(self, key: Key) -> LineStat:
        """The account of ``key``, opened on first use."""
        found = self.stats.get(key)
        if found is None:
            found = self.stats[key] = LineStat()
        return found

    def charge(self, key: Key, delta: int) -> None:
        """RSS changed by ``delta`` bytes while ``key`` ran."""
        if not delta:
            return
        stat = self.stat(key)
        stat.increment += delta
        if delta > 0:
            live = self.live
            if live and live[-1][0] == key:
                live[-1][1] += delta
            else:
                live.append([key, delta])
                if len(live) > MAX_LIVE:
                    self._merge_oldest()
            stat.kept += delta
            self._touched.add(key)
        else:
            self._give_back(-delta)

    def _give_back(self, amount: int) -> None:
        """A fall in RSS: the newest gain of its size first, else the newest gains."""
        live = self.live
        while amount > 0 and live:
            tolerance = max(self.page, amount // 64)
            index = len(live) - 1
            for i in range(len(live) - 1, max(-1, len(live) - 1 - MATCH_WINDOW), -1):
                if abs(live[i][1] - amount) <= tolerance:
                    index = i
                    break
            key, size = live[index]
            taken = min(size, amount)
            amount -= taken
            self.stats[key].kept -= taken
            self._touched.add(key)
            if taken == size:
                del live[index]
            else:
                live[index][1] = size - taken
        self.untracked_release += amount

    def _merge_oldest(self) -> None:
        """Merge the older half of the live gains per line: their order no longer matters for the rows."""
        half = len(self.live) // 2
        merged: dict[Key, int] = {}
        for key, size in self.live[:half]:
            merged[key] = merged.get(key, 0) + size
        self.live[:half] = [[key, size] for key, size in merged.items()]

    def end_epoch(self) -> None:
        """Close an epoch: count it, and for each line whose kept bytes rose in it, one more growing epoch."""
        for key in self._touched:
            stat = self.stats[key]
            if stat.kept > stat.kept_at_epoch_start:
                stat.grew_epochs += 1
            stat.kept_at_epoch_start = stat.kept
        self._touched.clear()
        self.epochs += 1

    def rows(self, top: int) -> list[dict]:
        """The ``top`` lines that kept most (then gained most), as lines.json rows without their source text."""
        epochs = max(self.epochs, 1)
        keys = [key for key in {**self.runs, **self.stats} if key != OUTSIDE]
        empty = LineStat()
        order = {key: self.stats.get(key, empty) for key in keys}
        keys.sort(key=lambda k: (order[k].kept, order[k].increment, -k[1]), reverse=True)
        rows = []
        for key in keys[:top]:
            stat = order[key]
            rows.append(
                {
                    "file": key[0],
                    "line": key[1],
                    "function": self.functions.get(key, ""),
                    "occurrences": self.runs.get(key, 0),
                    "increment_bytes": stat.increment,
                    "increment_per_epoch": stat.increment / epochs,
                    "kept_bytes": stat.kept,
                    "kept_per_epoch": stat.kept / epochs,
                    "grew_epochs": stat.grew_epochs,
                }
            )
        return rows

    def outside(self) -> dict[str, int]:
        """What changed while no profiled line ran (between epochs: the harness, a frame's locals going)."""
        stat = self.stats.get(OUTSIDE, LineStat())
        return {"increment_bytes": stat.increment, "kept_bytes": stat.kept}
