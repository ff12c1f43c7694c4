"""Progress with rate and ETA for every long-running stage.

On a terminal: rich progress bars. Where stderr is not a terminal (a log file, a batch job, CI),
rich would draw nothing useful, so `make_progress` returns `PlainProgress` instead: the same small
API (`start`, `stop`, `add_task`, `update`, `advance`, context manager, `.console`) printing one
plain line per task at a steady interval (`MSD_PROGRESS_INTERVAL` seconds, default 30) and when a
task completes: description, n/N, percent, the task's info field, elapsed time and ETA.
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)


def _hms(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


class PlainProgress:
    """Line-per-interval progress for logs (see module docstring)."""

    def __init__(self, interval_s: float | None = None, stream=None):
        self.interval = float(os.environ.get("MSD_PROGRESS_INTERVAL", 30.0)) if interval_s is None else interval_s
        self.stream = stream or sys.stderr
        self.console = console
        self._tasks: dict[int, dict] = {}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for tid, t in self._tasks.items():
            if not t["final"]:
                self._print(tid)
                t["final"] = True

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        tid = len(self._tasks)
        now = time.monotonic()
        self._tasks[tid] = {"description": description, "total": total, "completed": completed, "start": now,
                            "c0": completed, "last": now, "fields": dict(fields), "final": False}
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self._tasks[task_id]["completed"] + advance)

    def update(self, task_id: int, completed: float | None = None, total: float | None = None,
               description: str | None = None, advance: float | None = None, **fields) -> None:
        t = self._tasks[task_id]
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        if advance is not None:
            t["completed"] += advance
        if completed is not None:
            t["completed"] = completed
        t["fields"].update(fields)
        now = time.monotonic()
        done = t["total"] is not None and t["completed"] >= t["total"]
        if (now - t["last"] >= self.interval or done) and not t["final"]:
            t["last"] = now
            self._print(task_id)
            t["final"] = done

    def line(self, task_id: int) -> str:
        t = self._tasks[task_id]
        el = time.monotonic() - t["start"]
        n, N = t["completed"], t["total"]
        rate = (n - t["c0"]) / el if el > 0 else 0.0
        parts = [t["description"] + ":", f"{n:g}/{N:g}" if N else f"{n:g}"]
        if N:
            parts.append(f"({100 * n / N:.0f}%)")
        info = t["fields"].get("info")
        if info:
            parts.append(str(info))
        parts.append(f"elapsed {_hms(el)}")
        if N and rate > 0:
            parts.append(f"ETA {_hms((N - n) / rate)}")
        return " ".join(parts)

    def _print(self, task_id: int) -> None:
        print(self.line(task_id), file=self.stream, flush=True)


def make_progress(transient: bool = False) -> Progress | PlainProgress:
    """A progress display: description, bar, n/N, %, rate field, elapsed and ETA (plain lines when
    stderr is not a terminal)."""
    if not console.is_terminal:
        return PlainProgress()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
