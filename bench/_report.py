"""The printed report of bench/decisions.py: figures as they come, then each target with PASS or
MISS."""

from __future__ import annotations

import os

import _cpu


class Report:
    """Prints as it goes; keeps the figures that have targets for the closing table."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, str, bool]] = []
        # For targets that compare two parts of the run: a figure, or the runs of one.
        self.figures: dict[str, float | list[float]] = {}
        self.busiest_other_cores = 0.0

    def line(self, text: str = "") -> None:
        print(text, flush=True)

    def usage(self, meter: _cpu.Meter) -> None:
        self.line(f"  ({meter.usage.describe()})")
        self.busiest_other_cores = max(self.busiest_other_cores, meter.usage.other_cores)

    def target(self, name: str, figure: str, passed: bool) -> None:
        self.targets.append((name, figure, passed))

    def verdicts(self) -> None:
        self.line("\nTargets")
        if self.busiest_other_cores > 0.2:
            self.line(
                f"  (other processes used up to {self.busiest_other_cores:.1f} of "
                f"{os.cpu_count()} cores during the run: the wall-clock figures are low; the "
                "CPU per operation and the ceilings above hold better)"
            )
        for name, figure, passed in self.targets:
            self.line(f"  {name:44s} {figure:>22s}   {'PASS' if passed else 'MISS'}")


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
