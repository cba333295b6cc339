"""What a simulation run keeps: its tallies, the sessions it writes, the truth file."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from demo.simulation.sessions import SessionRun, SlotPlay
from engagement import services as engagement_services

USER_AGENT = "InterludeSimulator/1.0"
TRUTH_COLUMNS = (
    "decision_id",
    "creative_id",
    "viewer_id",
    "title_id",
    "position",
    "occurred_at",
    "p_click",
    "clicked",
    "p_click_seen",
    "p_click_rested",
)
SESSIONS_PER_WRITE = 500


@dataclass
class SimulationResult:
    sessions: int = 0
    playback_events: int = 0
    decisions: int = 0
    impressions: int = 0
    clicks: int = 0
    completes: int = 0
    spend_micros: Counter[str] = field(default_factory=Counter)  # by currency
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    refused: Counter[str] = field(default_factory=Counter)  # live ad tags refused, by reason
    errors: int = 0  # HTTP failures in live mode
    seconds: float = 0.0

    def count_accepted(self, event_type: str) -> None:
        if event_type == "impression":
            self.impressions += 1
        elif event_type == "click":
            self.clicks += 1
        elif event_type == "complete":
            self.completes += 1

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    def summary(self, *, seed: int | None = None) -> str:
        spend = (
            " + ".join(
                f"{micros / 1_000_000:,.2f} {currency}"
                for currency, micros in sorted(self.spend_micros.items())
            )
            or "0.00"
        )
        line = (
            f"Simulated {self.sessions:,} sessions ({self.playback_events:,} playback events): "
            f"{self.decisions:,} decisions, {self.impressions:,} impressions, "
            f"{self.clicks:,} clicks (CTR {self.ctr:.2%}), {self.completes:,} completions, "
            f"spend {spend}, in {self.seconds:.1f} s"
            + (f" (seed {seed})." if seed is not None else ".")
        )
        problems = [
            f"{count:,} events rejected ({reason})" for reason, count in self.rejected.items()
        ]
        problems += [
            f"{count:,} ad tags refused ({reason})" for reason, count in self.refused.items()
        ]
        if self.errors:
            problems.append(f"{self.errors:,} failed requests")
        if problems:
            line = line[:-1] + "; " + ", ".join(problems) + "."
        return line


class TruthWriter:
    """One CSV row per counted impression: its true click probability and whether it was
    clicked (and the click counted). `viewer_id`, `title_id` and `creative_id` are database
    ids, as in AdEvent; `decision_id` is the UUID as AdEvent stores it."""

    def __init__(self, path: Path | None) -> None:
        self._file: TextIO | None = None
        self.rows = 0
        if path is not None:
            self._file = path.open("w", newline="")
            self._writer = csv.writer(self._file)
            self._writer.writerow(TRUTH_COLUMNS)

    def write(self, slot: SlotPlay, *, clicked: bool) -> None:
        if self._file is None:
            return
        decision = slot.decision_id
        if len(decision) == 32:  # the engine's hex form, as a UUID
            decision = "-".join(
                (decision[:8], decision[8:12], decision[12:16], decision[16:20], decision[20:])
            )
        self._writer.writerow(
            (
                decision,
                slot.slot.creative.id,
                slot.session.viewer.id,
                slot.session.title.id,
                slot.slot.position,
                slot.start_at.isoformat(),
                f"{slot.p_click:.6f}",
                int(clicked),
                f"{slot.p_click_seen:.6f}",
                f"{slot.p_click_rested:.6f}",
            )
        )
        self.rows += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SessionSink:
    """Collects sessions as they end and writes them in batches through the engagement
    services; `close` writes the rest, and the sessions still running as open ones."""

    def __init__(self, result: SimulationResult) -> None:
        self._finished: list[SessionRun] = []
        self._result = result

    def add(self, session: SessionRun) -> None:
        self._finished.append(session)
        if len(self._finished) >= SESSIONS_PER_WRITE:
            self.flush()

    def flush(self, running: list[SessionRun] | None = None) -> None:
        sessions = self._finished + (running or [])
        self._finished = []
        if not sessions:
            return
        engagement_services.viewing_sessions_record(
            sessions=[session_spec(session) for session in sessions]
        )
        self._result.playback_events += sum(len(session.events) for session in sessions)


def session_spec(session: SessionRun) -> engagement_services.SessionSpec:
    return engagement_services.SessionSpec(
        viewer_id=session.viewer.id,
        title_id=session.title.id,
        device=session.plan.device,
        started_at=session.plan.start_at,
        ended_at=session.ended_at,
        watched_seconds=session.watched_seconds,
        completed=session.completed,
        abandoned=session.abandoned,
        events=[
            engagement_services.PlaybackSpec(
                kind=kind, position_seconds=position, at=at, detail=detail
            )
            for kind, position, at, detail in session.events
        ],
    )
