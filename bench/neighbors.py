"""What else ran on the machine during a measured run.

The benchmarks share two cores with whatever else the machine hosts, and a burst of
someone else's CPU shows up as a stall in the open-loop tail. On the development machine
RabbitMQ starts a whole Erlang VM once a minute to check on its epmd (`erlexec -sname
epmd-starter-...`, ~0.25 s of CPU in half a second). `Neighbors` counts the machine's CPU
spent outside the run's own processes (this one, its children, Postgres) and notes every
process someone else started, with its time, so a stall can be lined up with its cause.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import psutil

POLL_SECONDS = 0.02  # a process that lives less than this can be missed


@dataclass
class NeighborReport:
    other_cpu_seconds: float  # machine CPU outside this process tree and Postgres
    steal_seconds: float  # CPU the hypervisor gave other guests while we were runnable
    # (time.time(), command or None if it exited before it was read)
    started: list[tuple[float, str | None]] = field(default_factory=list)


def _busy_and_steal() -> tuple[float, float]:
    times = psutil.cpu_times()
    steal = getattr(times, "steal", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - steal, steal


def _own_cpu() -> float:
    """This process and its reaped children (wrk runs to the end before it is sampled)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def _ours(pid: int) -> bool:
    """Started by this run (a descendant of this process) or by Postgres."""
    try:
        process = psutil.Process(pid)
        if (process.name() or "").startswith("postgres"):
            return True
        return any(parent.pid == os.getpid() for parent in process.parents())
    except psutil.Error:
        return True  # gone already: nothing to say about it


def _command(pid: int) -> str | None:
    """The program's name and arguments, shortened; None if it is gone already."""
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    return " ".join([os.path.basename(argv[0]), *argv[1:]])[:60] if argv else None


def bursts(started: list[tuple[float, str | None]]) -> list[tuple[float, str, int]]:
    """Starts within a second of each other as one burst (a shell script forks a dozen
    processes): when it began, its first command still there to name, how many."""
    grouped: list[tuple[float, str, int]] = []
    for at, command in started:
        if grouped and at - grouped[-1][0] < 1.0:
            first, name, count = grouped[-1]
            grouped[-1] = (first, name if name != "?" else command or "?", count + 1)
        else:
            grouped.append((at, command or "?", 1))
    return grouped


class Neighbors:
    """`start()` before a run and `stop(ours)` after it, with the CPU seconds the run's
    own measured processes (the receiver, Postgres) used meanwhile."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._started: list[tuple[float, str | None]] = []
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._busy, self._steal = _busy_and_steal()
        self._own = _own_cpu()
        self._thread.start()

    def stop(self, measured_cpu_seconds: float) -> NeighborReport:
        self._stopping.set()
        self._thread.join()
        busy, steal = _busy_and_steal()
        own = _own_cpu() - self._own
        others = busy - self._busy - own - measured_cpu_seconds
        return NeighborReport(max(others, 0.0), steal - self._steal, self._started)

    def _watch(self) -> None:
        if not os.path.isdir("/proc"):  # not Linux: CPU figures only
            return
        seen = set(os.listdir("/proc"))
        while not self._stopping.wait(POLL_SECONDS):
            now = set(os.listdir("/proc"))
            for entry in now - seen:
                if entry.isdigit() and not _ours(pid := int(entry)):
                    self._started.append((time.time(), _command(pid)))
            seen = now
