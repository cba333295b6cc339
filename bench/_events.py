"""Event ingestion phases of bench/decisions.py: batches of real events built from the tracking
tokens of real decisions, recorded in process and over POST /api/v1/events, in turns."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import _cpu
import _http
from _report import Report, ms, percentile

BATCH = 1000
EVENT_CLIENTS = 4
TARGET_EVENTS_PER_SECOND = 20_000
# Each way's events in four rounds, in turns: each goes first twice and second twice. Run one
# way after the other, the second was the slower whichever it was: 34,550 events/s in process
# then 24,104/s over HTTP, against 29,710/s over HTTP then 32,631/s in process in the other
# order (session 14, 50,000 events each way; no autovacuum ran meanwhile). With two rounds
# each of 5,000 events (BENCH_EVENTS=10000), one round's rate moved by a fifth from one run to
# the next: the ratio of the ways went from 0.77 to 1.17 on the same code (session 15).
ROUNDS = ("in process", "over HTTP", "over HTTP", "in process") * 2
EACH = ROUNDS.count("in process")  # rounds each way
# Of the viewers who start an ad: share who reach each later event (and who click).
REACH = {"first_quartile": 0.97, "midpoint": 0.94, "third_quartile": 0.91, "complete": 0.88}
CLICK_SHARE = 0.015


def slots_for(events: int) -> int:
    per_slot = 1 + sum(REACH.values()) + CLICK_SHARE
    return int(events / per_slot) + 1


def slots_needed(total: int) -> int:
    """The tracking tokens in_turns needs for `total` events each way."""
    return len(ROUNDS) * slots_for(total // EACH)


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


@dataclass
class Side:
    """One way's rounds added up."""

    events: int = 0
    batches: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # the bench's own CPU in process, the server's over HTTP
    services_cpu: float = 0.0  # PostgreSQL's and Redis's
    other_cores: float = 0.0  # the most that other processes used in a round
    statuses: Counter[str] = field(default_factory=Counter)
    timings: list[float] = field(default_factory=list)  # in process: each batch's seconds
    rates: list[float] = field(default_factory=list)  # each round's events a second
    failures: int = 0  # non-2xx answers over HTTP


def in_turns(
    report: Report, *, port: int, pid: int, key: str, tokens: list[str], rng, total: int
) -> tuple[dict[str, int], int]:
    """`total` events each way in ROUNDS: in process, events_record with batches of BATCH
    from EVENT_CLIENTS threads (each with its own database connection, as the API's server
    threads have); over HTTP, POST /api/v1/events from EVENT_CLIENTS connections to the api
    process (`pid`, serving on `port`). Returns the accepted count of each way and the number
    of failures (non-2xx answers, duplicates, rejections)."""
    sides = {"in process": Side(), "over HTTP": Side()}
    per_round = total // EACH
    slots = slots_for(per_round)
    for number, way in enumerate(ROUNDS):
        mine = tokens[number * slots : (number + 1) * slots]
        phases = event_batches(mine, per_round, rng, f"r{number}")
        if way == "in process":
            _in_process(sides[way], phases, server=pid)
        else:
            _over_http(sides[way], phases, port=port, pid=pid, key=key)
    local, http = sides["in process"], sides["over HTTP"]
    report.line(
        f"\nEvents, {total:,} each way in {len(ROUNDS)} rounds in turns ({', '.join(ROUNDS)})"
    )
    local_rate, http_rate = local.events / local.seconds, http.events / http.seconds
    local.timings.sort()
    report.line(
        f"  in process: {local.events:,} in {local.batches} batches of {BATCH:,} from "
        f"{EVENT_CLIENTS} threads: {local_rate:,.0f} events/s ({_rounds(local)}); batch p50 "
        f"{ms(percentile(local.timings, 0.5))}  p99 {ms(percentile(local.timings, 0.99))}; "
        f"{dict(local.statuses)}"
    )
    here, services = local.cpu / local.events * 1000, local.services_cpu / local.events * 1000
    # One process's Python runs on one core at a time (the GIL); PostgreSQL on the other.
    ceiling = 1000 / max(here, (here + services) / (os.cpu_count() or 1))
    report.line(
        f"    CPU per 1,000 events: {ms(here)} here, {ms(services)} in PostgreSQL and Redis: a "
        f"ceiling of {ceiling:,.0f} events/s for one process on idle cores"
    )
    report.line(
        f"  over HTTP: {http.events:,} in {http.batches} POSTs of up to {BATCH:,} from "
        f"{EVENT_CLIENTS} clients: {http_rate:,.0f} events/s ({_rounds(http)}); "
        f"{dict(http.statuses)}"
    )
    server, services = http.cpu / http.events * 1000, http.services_cpu / http.events * 1000
    ceiling = (os.cpu_count() or 1) * 1000 / (server + services)
    report.line(
        f"    CPU per 1,000 events: {ms(server)} in the server, {ms(services)} in PostgreSQL "
        f"and Redis: a ceiling of {ceiling:,.0f} events/s on idle cores"
    )
    busiest = max(local.other_cores, http.other_cores)
    report.line(f"  (other processes used up to {busiest:.2f} of {os.cpu_count()} cores a round)")
    report.busiest_other_cores = max(report.busiest_other_cores, busiest)
    report.figures["events in process"] = local_rate
    report.figures["events over HTTP"] = http_rate
    for way, rate in (("in process", local_rate), ("over HTTP", http_rate)):
        report.target(
            f"events ingested {way} ≥ {TARGET_EVENTS_PER_SECOND:,}/s",
            f"{rate:,.0f}/s",
            rate >= TARGET_EVENTS_PER_SECOND,
        )
    failures = http.failures + sum(
        side.statuses["duplicate"] + side.statuses["rejected"] for side in sides.values()
    )
    return {way: side.statuses["accepted"] for way, side in sides.items()}, failures


def _rounds(side: Side) -> str:
    return "rounds " + " and ".join(f"{rate:,.0f}" for rate in side.rates)


def _in_process(side: Side, phases: list[list], *, server: int) -> None:
    """One round of events_record, one phase after the other; the CPU is this process's less
    the api server's (its child, idle meanwhile but for its refreshers)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from ads import services

    def record(batch: list) -> list[str]:
        batch_began = time.perf_counter()
        outcomes = services.events_record(events=batch)
        side.timings.append(time.perf_counter() - batch_began)  # list.append: atomic
        return [outcome.status for outcome in outcomes]

    def close_connection(_: int) -> None:
        connection.close()

    with ThreadPoolExecutor(EVENT_CLIENTS) as pool:
        server_before = _cpu.tree_seconds(server)
        with _cpu.Meter() as meter:
            for batches in phases:  # a later event needs its impression stored first
                for batch_statuses in pool.map(record, batches):
                    side.statuses.update(batch_statuses)
        server_cpu = _cpu.tree_seconds(server) - server_before
        list(pool.map(close_connection, range(EVENT_CLIENTS)))
    events = sum(len(batch) for phase in phases for batch in phase)
    side.rates.append(events / meter.usage.seconds)
    side.events += events
    side.batches += sum(map(len, phases))
    side.seconds += meter.usage.seconds
    side.cpu += meter.usage.own_seconds - server_cpu
    side.services_cpu += meter.usage.services_seconds
    side.other_cores = max(side.other_cores, meter.usage.other_cores)


def _over_http(side: Side, phases: list[list], *, port: int, pid: int, key: str) -> None:
    """One round of POSTs: each phase's batches from EVENT_CLIENTS connections (a later event
    needs its impression stored)."""
    bodies = [
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
        for phase in phases
    ]
    server_before, seconds = _cpu.tree_seconds(pid), 0.0
    with _cpu.Meter() as meter:
        for posts in bodies:
            run = _http.python_run(
                port=port,
                path="/api/v1/events",
                key=key,
                bodies=posts,
                connections=EVENT_CLIENTS,
                keep_bodies=True,
            )
            seconds += run.seconds
            side.failures += run.non_2xx
            for body in run.bodies:
                answer = json.loads(body)
                for status, name in (
                    ("accepted", "accepted"),
                    ("duplicate", "duplicates"),
                    ("rejected", "rejected"),
                ):
                    side.statuses[status] += answer.get(name, 0)
    events = sum(len(batch) for phase in phases for batch in phase)
    side.rates.append(events / seconds)
    side.events += events
    side.seconds += seconds
    side.batches += sum(map(len, bodies))
    side.cpu += _cpu.tree_seconds(pid) - server_before
    side.services_cpu += meter.usage.services_seconds
    side.other_cores = max(side.other_cores, meter.usage.other_cores)
