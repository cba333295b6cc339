"""Event ingestion phases of bench/decisions.py: batches of real events built from the tracking
tokens of real decisions, recorded in process and over POST /api/v1/events."""

from __future__ import annotations

import json
import os
import random
import time

import _cpu
import _http
from _report import Report, ms, percentile

BATCH = 1000
EVENT_CLIENTS = 4
TARGET_EVENTS_PER_SECOND = 20_000
# Of the viewers who start an ad: share who reach each later event (and who click).
REACH = {"first_quartile": 0.97, "midpoint": 0.94, "third_quartile": 0.91, "complete": 0.88}
CLICK_SHARE = 0.015


def slots_for(events: int) -> int:
    per_slot = 1 + sum(REACH.values()) + CLICK_SHARE
    return int(events / per_slot) + 1


def event_batches(tokens: list[str], total: int, rng: random.Random, tag: str) -> list[list]:
    """`total` events of these slots in two phases of batches of BATCH: the impressions, then
    the quartiles, completes and clicks of those impressions (each needs its impression stored
    first, so a phase's batches may be sent concurrently)."""
    from ads import services

    impressions, later = [], []
    for number, token in enumerate(tokens):
        impressions.append(services.IncomingEvent(token, "impression", f"{tag}-{number}-i"))
        for event_type, reach in REACH.items():
            if rng.random() < reach:
                later.append(
                    services.IncomingEvent(token, event_type, f"{tag}-{number}-{event_type}")
                )
        if rng.random() < CLICK_SHARE:
            later.append(services.IncomingEvent(token, "click", f"{tag}-{number}-c"))
    # `tokens` holds slots_for(total) slots: the cut drops some of the last later events.
    later = later[: max(0, total - len(impressions))]
    return [
        [events[start : start + BATCH] for start in range(0, len(events), BATCH)]
        for events in (impressions, later)
    ]


def in_process(report: Report, tokens: list[str], rng: random.Random, total: int) -> int:
    """events_record with batches of BATCH from EVENT_CLIENTS threads (each with its own
    database connection, as the API's server threads have), one phase after the other;
    returns the accepted count."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from ads import services

    phases = event_batches(tokens, total, rng, "local")
    timings: list[float] = []
    statuses = {"accepted": 0, "duplicate": 0, "rejected": 0}

    def record(batch: list) -> list[str]:
        batch_began = time.perf_counter()
        outcomes = services.events_record(events=batch)
        timings.append(time.perf_counter() - batch_began)  # list.append: atomic
        return [outcome.status for outcome in outcomes]

    def close_connection(_: int) -> None:
        connection.close()

    with ThreadPoolExecutor(EVENT_CLIENTS) as pool:
        with _cpu.Meter() as meter:
            for batches in phases:  # a later event needs its impression stored first
                for batch_statuses in pool.map(record, batches):
                    for status in batch_statuses:
                        statuses[status] += 1
        list(pool.map(close_connection, range(EVENT_CLIENTS)))
    elapsed = meter.usage.seconds
    batches = [batch for phase in phases for batch in phase]
    events = sum(len(batch) for batch in batches)
    per_second = events / elapsed
    timings.sort()
    report.line(
        f"\nEvents in process: {events:,} in {len(batches)} batches of {BATCH:,} from "
        f"{EVENT_CLIENTS} threads"
    )
    report.line(
        f"  {per_second:,.0f} events/s; batch p50 {ms(percentile(timings, 0.5))}"
        f"  p99 {ms(percentile(timings, 0.99))}; {statuses}"
    )
    here = meter.usage.own_seconds / events * 1000
    services_cpu = meter.usage.services_seconds / events * 1000
    # One process's Python runs on one core at a time (the GIL); PostgreSQL on the other.
    ceiling = 1000 / max(here, (here + services_cpu) / (os.cpu_count() or 1))
    report.line(
        f"  CPU per 1,000 events: {ms(here)} here, {ms(services_cpu)} in PostgreSQL and "
        f"Redis: a ceiling of {ceiling:,.0f} events/s for one process on idle cores"
    )
    report.usage(meter)
    report.figures["events in process"] = per_second
    report.target(
        f"events ingested in process ≥ {TARGET_EVENTS_PER_SECOND:,}/s",
        f"{per_second:,.0f}/s",
        per_second >= TARGET_EVENTS_PER_SECOND,
    )
    return statuses["accepted"]


def over_http(
    report: Report, *, port: int, pid: int, key: str, tokens: list[str], rng, total: int
) -> tuple[int, int]:
    """POST /api/v1/events: the impression batches, then the batches of later events, each
    phase from EVENT_CLIENTS connections (a later event needs its impression stored). Returns
    the accepted count and the number of failures (non-2xx answers, duplicates, rejections)."""
    phases = [
        [
            json.dumps(
                {
                    "events": [
                        {"event_id": e.client_event_id, "token": e.token, "type": e.event_type}
                        for e in batch
                    ]
                }
            ).encode()
            for batch in phase
        ]
        for phase in event_batches(tokens, total, rng, "http")
    ]
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    elapsed, failures = 0.0, 0
    server_before = _cpu.tree_seconds(pid)
    with _cpu.Meter() as meter:
        for bodies in phases:
            run = _http.python_run(
                port=port,
                path="/api/v1/events",
                key=key,
                bodies=bodies,
                connections=EVENT_CLIENTS,
                keep_bodies=True,
            )
            elapsed += run.seconds
            failures += run.non_2xx
            for body in run.bodies:
                answer = json.loads(body)
                for name in totals:
                    totals[name] += answer.get(name, 0)
    events = sum(totals.values())
    per_second = events / elapsed
    report.line(
        f"  events: {events:,} in {sum(map(len, phases))} POSTs of up to {BATCH:,} from "
        f"{EVENT_CLIENTS} clients: {per_second:,.0f} events/s; {totals}"
    )
    server_cpu = (_cpu.tree_seconds(pid) - server_before) / events * 1000
    services_cpu = meter.usage.services_seconds / events * 1000
    ceiling = (os.cpu_count() or 1) * 1000 / (server_cpu + services_cpu)
    report.line(
        f"    CPU per 1,000 events: {ms(server_cpu)} in the server, {ms(services_cpu)} in "
        f"PostgreSQL and Redis: a ceiling of {ceiling:,.0f} events/s on idle cores"
    )
    report.usage(meter)
    report.figures["events over HTTP"] = per_second
    report.target(
        f"events ingested over HTTP ≥ {TARGET_EVENTS_PER_SECOND:,}/s",
        f"{per_second:,.0f}/s",
        per_second >= TARGET_EVENTS_PER_SECOND,
    )
    return totals["accepted"], failures + totals["duplicates"] + totals["rejected"]
