"""CPU accounting of bench/decisions.py (Linux /proc): how much CPU the bench itself used (its
process, the server it started, the load generator) and how much other processes took from the
same cores meanwhile, so that figures measured on a busy machine can be read for what they are.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (not idle, not waiting for I/O)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK


SERVICES = ("postgres", "redis-server")


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process."""
    processes = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    head, tail = stat.read().rsplit(")", 1)
                processes.append((int(name), int(tail.split()[1]), head.split("(", 1)[1]))
            except (OSError, IndexError, ValueError):
                continue
    return processes


def _process_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, and those of its children it has waited for
    return sum(int(value) for value in fields[11:15]) / TICK


def tree_seconds(pid: int) -> float:
    """CPU seconds of a process and every descendant still running (ended ones count in the
    parent that waited for them)."""
    tree: dict[int, list[int]] = {}
    for child, parent, _ in _processes():
        tree.setdefault(parent, []).append(child)
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += _process_seconds(current)
        pending += tree.get(current, [])
    return total


def own_seconds() -> float:
    """CPU seconds of this process and everything it started."""
    return tree_seconds(os.getpid())


def services_seconds() -> float:
    """CPU seconds of PostgreSQL and Redis (all their processes, whoever uses them)."""
    return sum(_process_seconds(pid) for pid, _, name in _processes() if name in SERVICES)


@dataclass
class Usage:
    seconds: float
    own_cores: float
    services_cores: float
    other_cores: float

    @property
    def own_seconds(self) -> float:
        return self.own_cores * self.seconds

    @property
    def services_seconds(self) -> float:
        return self.services_cores * self.seconds

    def describe(self) -> str:
        return (
            f"CPU, in cores of {os.cpu_count()}: this bench {self.own_cores:.2f}, PostgreSQL and "
            f"Redis {self.services_cores:.2f}, other processes {self.other_cores:.2f}"
        )


class Meter:
    """`with Meter() as meter: ...`, then `meter.usage`."""

    def __enter__(self) -> Meter:
        self._wall = time.perf_counter()
        self._own = own_seconds()
        self._services = services_seconds()
        self._busy = machine_busy_seconds()
        return self

    def __exit__(self, *exc_info) -> None:
        wall = time.perf_counter() - self._wall
        own = own_seconds() - self._own
        services = services_seconds() - self._services
        busy = machine_busy_seconds() - self._busy
        other = max(0.0, busy - own - services)
        self.usage = Usage(wall, own / wall, services / wall, other / wall)
