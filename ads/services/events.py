"""Ad events: checked against their signed token, stored once, counted once.

The AdEvent table is the truth. An event's id is its decision, creative and type, so the same
event reported twice, through a tracking link or a batch, or both, is stored once; the insert
itself decides, on the table's unique key, so concurrent duplicates cannot both count (a plain
INSERT when the batch is all new, ON CONFLICT DO NOTHING ... RETURNING when it is not: see
`_pg_insert`). Counters (spend, creative click-through, live stats) are bumped only for rows the
insert stored, and `ads.services.rebuild.counters_rebuild` recomputes them from the table after
a cache loss.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ads.decisioning.index import current_index
from ads.delivery import keys
from ads.delivery.counters import Bump, DeliveryStateUnavailable, counters
from ads.delivery.tokens import CLOCK_SKEW, InvalidToken, TrackingClaim, read_token
from ads.learning.features import fatigue_bucket
from ads.models import AdEvent, Creative
from ads.services import partitions
from ads.services.recovery import (
    backlog_apply,
    backlog_write,
    retried_on_lost_connection,
)
from catalog.models import AdBreak, Title, Viewer
from config.publish import Publisher

logger = logging.getLogger(__name__)
MAX_BATCH = 1000
LIVE_INTERVAL = 0.25  # seconds between two live messages to one account's dashboards
LIVE_METRIC: dict[str, str] = {
    AdEvent.Type.IMPRESSION: "impressions",
    AdEvent.Type.CLICK: "clicks",
    AdEvent.Type.COMPLETE: "completes",
}
# Substrings of user agents of known crawlers and scripted clients (lower case).
BOT_USER_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "slurp",
    "facebookexternalhit",
    "python-requests",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp/",
)
EVENT_TYPES = frozenset(AdEvent.Type.values)
# Every other event of a slot needs that slot's impression first.
NEEDS_IMPRESSION = EVENT_TYPES - {AdEvent.Type.IMPRESSION}


class IncomingEvent(NamedTuple):
    """One reported event. A named tuple, not a frozen dataclass: a batch over the API builds a
    thousand of them, and a frozen dataclass sets each field through object.__setattr__ (about a
    microsecond an event, a tenth of the batch's parsing)."""

    token: str
    event_type: str
    client_event_id: str = ""
    occurred_at: datetime | None = None
    # Why the caller already knows this event is unusable (a time that cannot exist): it is
    # rejected with this reason, alone, and the rest of its batch goes on.
    problem: str | None = None


class EventOutcome(NamedTuple):
    """What became of one event. A named tuple, as IncomingEvent: a batch answers a thousand,
    and a frozen dataclass took twice as long to build (~1 µs against ~0.5)."""

    status: str  # accepted, duplicate or rejected
    reason: str | None = None
    claim: TrackingClaim | None = None
    client_event_id: str = ""


def is_bot(user_agent: str) -> bool:
    agent = user_agent.lower()
    return any(marker in agent for marker in BOT_USER_AGENTS)


def _storable(text: str) -> bool:
    """Whether a text column takes it: PostgreSQL refuses a null character, and a lone
    surrogate (valid in a JSON string, not in UTF-8) cannot be encoded for it."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def event_track(
    *, token: str, event_type: str, user_agent: str = "", at: datetime | None = None
) -> EventOutcome:
    """One event from a tracking link, fired by the viewer's device: its player or browser
    always names itself, so a missing or blank User-Agent is a script's, rejected as `bot`
    (as the IAB's invalid-traffic guidelines do). A batch comes from a server with a
    platform key, whose User-Agent says nothing about the viewer: a blank one passes there."""
    (outcome,) = events_record(
        events=[IncomingEvent(token=token, event_type=event_type)],
        user_agent=user_agent,
        at=at,
        blank_agent_is_bot=True,
    )
    return outcome


class _Pending(NamedTuple):
    """An event that passed the checks so far."""

    position: int  # in the batch
    claim: TrackingClaim
    event_type: str
    occurred: datetime
    event_id: str


def events_record(
    *,
    events: list[IncomingEvent],
    user_agent: str = "",
    at: datetime | None = None,
    blank_agent_is_bot: bool = False,
) -> list[EventOutcome]:
    """Check, store and count a batch of events; one outcome per event, in order.

    1. Each token must be genuine and unexpired, the type known, the user agent not a bot's,
       and a reported time within the token's life (with CLOCK_SKEW either way).
    2. Within the batch, a repeated event is a duplicate; impressions are taken first, so a
       batch may carry a slot's impression and its later events together.
    3. Events other than impressions need their slot's impression (stored or in this batch).
    4. The creative (under the claim's line item and advertiser), viewer and title must
       still exist; an ad break that no longer does is stored as none.
    5. One INSERT (on PostgreSQL a plain one first, ON CONFLICT DO NOTHING RETURNING when a row
       is already stored): rows it stores are accepted, the others were stored before
       (duplicates).
    6. Counters move for accepted events only; rejections are counted by reason.
    """
    if len(events) > MAX_BATCH:
        raise ValueError(f"At most {MAX_BATCH} events in one batch.")
    now = at or timezone.now()
    latest = now + CLOCK_SKEW
    outcomes: list[EventOutcome | None] = [None] * len(events)
    pending: list[_Pending] = []
    bot = is_bot(user_agent) or (blank_agent_is_bot and not user_agent.strip())
    # A batch carries a slot's token once per event of the slot (its impression, quartiles,
    # click): each distinct token is read once, its claim or the reason it is refused kept
    # for the others (reading is deterministic at `now`).
    read: dict[str, TrackingClaim | str] = {}
    for position, event in enumerate(events):
        claim = read.get(event.token)
        if claim is None:
            try:
                claim = read_token(event.token, at=now)
            except InvalidToken as error:
                claim = error.reason
            read[event.token] = claim
        if isinstance(claim, str):
            outcomes[position] = EventOutcome("rejected", claim, None, event.client_event_id)
            continue
        reason = None
        occurred = event.occurred_at or now
        event_type = event.event_type
        if event.problem:
            reason = event.problem
        elif not _storable(event.client_event_id):
            reason = "invalid_event_id"
        elif event_type not in EVENT_TYPES:
            reason = "unknown_event_type"
        elif bot:
            reason = "bot"
        elif not claim.issued_at - CLOCK_SKEW <= occurred <= latest:
            reason = "bad_timestamp"
        if reason:
            outcomes[position] = EventOutcome("rejected", reason, claim, event.client_event_id)
        else:
            event_id = claim.event_id(event_type)
            pending.append(_Pending(position, claim, event_type, occurred, event_id))

    pending.sort(key=lambda item: (item.event_type != AdEvent.Type.IMPRESSION, item.position))
    seen: set[str] = set()
    unique = []
    for item in pending:
        if item.event_id in seen:
            outcomes[item.position] = _outcome("duplicate", "replayed", item, events)
        else:
            seen.add(item.event_id)
            unique.append(item)

    stored = retried_on_lost_connection(lambda: _store(unique, outcomes, events, now))
    final = [outcome for outcome in outcomes if outcome is not None]
    _count(final, stored, now)
    return final


class _Stored(NamedTuple):
    accepted: list[_Pending]
    backlog_id: int | None  # the entry holding their counter effects
    bumps: list[Bump]
    advertiser_ids: set[int]


def _store(
    unique: list[_Pending],
    outcomes: list[EventOutcome | None],
    events: list[IncomingEvent],
    now: datetime,
) -> _Stored:
    """Steps 3 to 5, and the accepted events' counter effects written to the backlog in the
    insert's transaction: stored events never lose their counting, whatever fails next."""
    unique = _with_impressions(unique, outcomes, events)
    unique, ad_breaks = _with_known_references(unique, outcomes, events)
    with transaction.atomic():
        inserted = _insert(unique, events, now, ad_breaks)
        accepted = []
        for item in unique:
            if item.event_id in inserted:
                outcomes[item.position] = _outcome("accepted", None, item, events)
                accepted.append(item)
            else:
                outcomes[item.position] = _outcome("duplicate", "replayed", item, events)
        bumps, advertiser_ids = _event_bumps(accepted)
        backlog_id = backlog_write(bumps=bumps)
    return _Stored(accepted, backlog_id, bumps, advertiser_ids)


def _outcome(
    status: str, reason: str | None, item: _Pending, events: list[IncomingEvent]
) -> EventOutcome:
    return EventOutcome(status, reason, item.claim, events[item.position].client_event_id)


def _with_impressions(
    unique: list[_Pending], outcomes: list[EventOutcome | None], events: list[IncomingEvent]
) -> list[_Pending]:
    impression = AdEvent.Type.IMPRESSION
    in_batch = {item.event_id for item in unique if item.event_type == impression}
    later = [
        (item, item.claim.event_id(impression))
        for item in unique
        if item.event_type in NEEDS_IMPRESSION
    ]
    # Each impression not in the batch, with its decision's time (its partition).
    needed = {
        impression_id: item.claim.issued_at
        for item, impression_id in later
        if impression_id not in in_batch
    }
    if not needed:
        return unique
    available = in_batch | _stored_event_ids(needed)
    kept = [item for item in unique if item.event_type not in NEEDS_IMPRESSION]
    for item, impression_id in later:
        if impression_id in available:
            kept.append(item)
        else:
            outcomes[item.position] = _outcome("rejected", "no_impression", item, events)
    return kept


def _stored_event_ids(wanted: dict[str, datetime]) -> set[str]:
    """Which of these events (event id: its decision's time) are stored.

    PostgreSQL looks each (event id, time) pair up in the unique index of its day's partition
    (a nested loop over the pairs, the other partitions pruned as it runs). Not `event_id =
    ANY(ids) AND decided_at = ANY(times)`: the index then took every id with every time, so a
    batch's lookup grew with ids × distinct seconds (1,000 ids of 4 seconds: 24.8 ms against
    4.5 ms as pairs, EXPLAIN ANALYZE, session 15; a player's batch spans a minute's decisions)."""
    if connection.vendor == "postgresql":
        rows = _pg_rows(
            f"SELECT e.event_id FROM {AdEvent._meta.db_table} e "
            "JOIN unnest(%b::text[], %b::timestamptz[]) AS k(event_id, decided_at) "
            "ON e.event_id = k.event_id AND e.decided_at = k.decided_at",
            [list(wanted), list(wanted.values())],
        )
        return {event_id for (event_id,) in rows}
    stored = AdEvent.objects.filter(
        event_id__in=list(wanted), decided_at__in=set(wanted.values())
    ).values_list("event_id", "decided_at")
    return {event_id for event_id, decided_at in stored if wanted[event_id] == decided_at}


def _with_known_references(
    unique: list[_Pending], outcomes: list[EventOutcome | None], events: list[IncomingEvent]
) -> tuple[list[_Pending], set[int]]:
    """A genuine token can outlive its creative, viewer, title or ad break (deleted by staff).

    AdEvent's foreign keys have no database constraint, so this is the check: an event whose
    creative (under the claim's line item and advertiser), viewer or title is gone is rejected;
    one whose ad break is gone is stored without it, as deleting the break would have left it
    (SET_NULL). Returns the kept events and the ad breaks that exist."""
    if not unique:
        return unique, set()
    claims = [item.claim for item in unique]
    creative_ids = {claim.creative_id for claim in claims}
    viewer_ids = {claim.viewer_id for claim in claims}
    title_ids = {claim.title_id for claim in claims}
    ad_break_ids = {claim.ad_break_id for claim in claims}
    found: dict[int, set] = {0: set(), 1: set(), 2: set(), 3: set()}
    for kind, row_id, line_item_id, advertiser_id in _reference_rows(
        [creative_ids, viewer_ids, title_ids, ad_break_ids]
    ):
        found[kind].add((row_id, line_item_id, advertiser_id) if kind == 0 else row_id)
    creatives, viewers, titles, ad_breaks = found[0], found[1], found[2], found[3]
    kept = []
    for item in unique:
        claim = item.claim
        if (
            (claim.creative_id, claim.line_item_id, claim.advertiser_id) in creatives
            and claim.viewer_id in viewers
            and claim.title_id in titles
        ):
            kept.append(item)
        else:
            outcomes[item.position] = _outcome("rejected", "unknown_reference", item, events)
    return kept, ad_breaks


INSERT_FIELDS = [
    "advertiser",
    "line_item",
    "creative",
    "viewer",
    "title",
    "ad_break",
    "event_type",
    "event_id",
    "client_event_id",
    "decision_id",
    "pod_position",
    "device",
    "region",
    "occurred_at",
    "decided_at",
    "received_at",
    "cost_micros",
]


def event_cost(claim: TrackingClaim, event_type: str) -> int:
    """CPM line items pay at the impression, CPC line items at the click."""
    if claim.is_cpm:
        return claim.price_micros if event_type == AdEvent.Type.IMPRESSION else 0
    return claim.price_micros if event_type == AdEvent.Type.CLICK else 0


def _insert(
    unique: list[_Pending], events: list[IncomingEvent], now: datetime, ad_breaks: set[int]
) -> set[str]:
    """Store the rows in one statement (in the caller's transaction); returns the event ids it
    inserted (not the ones already stored)."""
    if not unique:
        return set()
    claims = [item.claim for item in unique]
    columns: list[list[Any]] = [  # in INSERT_FIELDS order
        [claim.advertiser_id for claim in claims],
        [claim.line_item_id for claim in claims],
        [claim.creative_id for claim in claims],
        [claim.viewer_id for claim in claims],
        [claim.title_id for claim in claims],
        [claim.ad_break_id if claim.ad_break_id in ad_breaks else None for claim in claims],
        [item.event_type for item in unique],
        [item.event_id for item in unique],
        [events[item.position].client_event_id[:80] for item in unique],
        [claim.decision_id for claim in claims],
        [claim.position for claim in claims],
        [claim.device for claim in claims],
        [claim.region for claim in claims],
        [item.occurred for item in unique],
        [claim.issued_at for claim in claims],
        [now] * len(unique),
        [event_cost(item.claim, item.event_type) for item in unique],
    ]
    if connection.vendor == "postgresql":
        arrays = [
            _int_array(column) if integer else column
            for integer, column in zip(_integer_columns(), columns, strict=True)
        ]
        return _pg_insert(arrays, claims, event_ids=columns[INSERT_FIELDS.index("event_id")])
    sql, params = _insert_values(columns)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {event_id for (event_id,) in cursor.fetchall()}


def _pg_insert(arrays: list, claims: list[TrackingClaim], event_ids: list[str]) -> set[str]:
    """The rows in one statement, on PostgreSQL: a plain INSERT first, as nearly every batch is
    new; it costs two thirds of one ON CONFLICT ... DO NOTHING RETURNING, which first looks up
    each row's key in the unique index and then inserts it speculatively (1,000 events: 10.7
    against 14.5 ms in PostgreSQL, EXPLAIN ANALYZE, session 15). A batch holding an event
    already stored (a player's retry) fails it on the unique key, in a savepoint, and goes
    again with ON CONFLICT, which returns the rows it inserted; a day with no partition yet
    fails it too, and goes again once its partition is made."""
    conflicts = made = False  # at most three attempts: each of these once
    while True:
        try:
            with transaction.atomic():
                rows = _pg_rows(_insert_unnest_sql(conflicts=conflicts), arrays)
        except IntegrityError as error:
            if not made and partitions.is_missing_partition(error):
                days = {claim.issued_at.date() for claim in claims}  # UTC, as issued_at
                partitions.event_partitions_make(first_day=min(days), last_day=max(days))
                made = True
            elif not conflicts and _is_unique_violation(error):
                conflicts = True
            else:
                raise
            continue
        return {event_id for (event_id,) in rows} if conflicts else set(event_ids)


def _is_unique_violation(error: BaseException) -> bool:
    """Whether a database error is a unique key's refusal: in the events' insert, only the
    (event_id, decided_at) key can refuse (the id is the sequence's)."""
    return getattr(error.__cause__ or error, "sqlstate", None) == "23505"


def _pg_rows(sql: str, params: list) -> list[tuple]:
    """Run a statement on PostgreSQL through a cursor that binds parameters on the server, not
    Django's client-side binding one: psycopg sends a list as one array parameter (%b: binary),
    instead of quoting each of its values into the statement's text; integer arrays go as
    one literal (`_int_array`).
    (Statements are not prepared: Django turns that off for connection poolers; the
    `prepare_threshold` database option turns it on.)

    A statement that ran is the proof of a live connection that Django's health check
    (CONN_HEALTH_CHECKS) would otherwise seek with a `SELECT 1` before the request's next
    Django statement (the batch's transaction): it is marked done, as the check marks it. A
    connection lost after it fails that statement, and `retried_on_lost_connection` runs the
    batch's work again on a new one, as it does when this statement meets a lost one."""
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description is not None else []
    connection.health_check_done = True  # type: ignore[attr-defined]  # not in django-stubs
    return rows


def _reference_rows(ids: list[set]) -> list[tuple]:
    """The rows of `_references_sql` for four sets of ids: creatives, viewers, titles, breaks."""
    if connection.vendor == "postgresql":
        return _pg_rows(_references_sql("postgresql"), [_int_array(each) for each in ids])
    with connection.cursor() as cursor:
        cursor.execute(_references_sql(connection.vendor), [json.dumps(list(each)) for each in ids])
        return cursor.fetchall()


@cache
def _references_sql(vendor: str) -> str:
    """The creatives (with their line item and advertiser), viewers, titles and ad breaks of
    four arrays of ids, in one round trip: (0, creative, line item, advertiser), (1, viewer),
    (2, title), (3, ad break). Each array is one parameter, so the statement's text is the same
    whatever the batch: a PostgreSQL array, or on SQLite a JSON array read by json_each (one
    statement instead of a query per table: on the embedded default these four ORM queries were
    most of a tracking event's CPU)."""
    line_item = Creative._meta.get_field("line_item").column
    advertiser = Creative._meta.get_field("advertiser").column
    among = (
        "id = ANY(%t::bigint[])"
        if vendor == "postgresql"
        else "id IN (SELECT value FROM json_each(%s))"
    )
    parts = [
        f"SELECT 0, id, {line_item}, {advertiser} FROM {Creative._meta.db_table} WHERE {among}"
    ]
    parts += [
        f"SELECT {kind}, id, NULL, NULL FROM {model._meta.db_table} WHERE {among}"
        for kind, model in enumerate([Viewer, Title, AdBreak], start=1)
    ]
    return " UNION ALL ".join(parts)


def _insert_fields() -> list:
    concrete = {field.name: field for field in AdEvent._meta.concrete_fields}
    return [concrete[name] for name in INSERT_FIELDS]


def _insert_head() -> str:
    columns = ", ".join(connection.ops.quote_name(field.attname) for field in _insert_fields())
    return f"INSERT INTO {AdEvent._meta.db_table} ({columns}) "


# The event's decision time is part of its key (the partition key on PostgreSQL, and the same in
# every report of one event): a duplicate meets its original in one partition.
ON_CONFLICT = " ON CONFLICT (event_id, decided_at) DO NOTHING RETURNING event_id"


@cache
def _insert_unnest_sql(*, conflicts: bool) -> str:
    """PostgreSQL: one array parameter per column, so the statement has 17 placeholders
    whatever the batch size (a VALUES list of 17,000 is parsed again at every call); with
    `conflicts`, ON_CONFLICT (see _pg_insert)."""
    arrays = ", ".join(
        f"%{'t' if integer else 'b'}::{field.cast_db_type(connection)}[]"
        for field, integer in zip(_insert_fields(), _integer_columns(), strict=True)
    )
    return _insert_head() + f"SELECT * FROM unnest({arrays})" + (ON_CONFLICT if conflicts else "")


# Integer columns (keys, positions, costs), sent to PostgreSQL as array literals (_int_array).
_INTEGER_TYPES = {"ForeignKey", "PositiveSmallIntegerField", "BigIntegerField"}


@cache
def _integer_columns() -> list[bool]:
    """Whether each of INSERT_FIELDS is an integer column."""
    return [field.get_internal_type() in _INTEGER_TYPES for field in _insert_fields()]


def _int_array(values: Iterable[int | None]) -> str:
    """A PostgreSQL array literal of integers (None: NULL), for a text parameter cast to an
    integer array (`%t::bigint[]`). psycopg dumps a list parameter one element at a time in
    Python (about 0.2 µs an element: the 17 columns of a 1,000-event batch cost ~4 ms of the
    batch's ~25); str.join of the integers' decimal forms does it in C, ~2.5× faster, and the
    server reads the literal in C. Integers only: ids and prices of claims (as make_token
    wrote them, under the token's tag) and costs, never a request's text."""
    values = list(values)
    if None in values:
        return "{" + ",".join(["NULL" if value is None else str(value) for value in values]) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def _insert_values(columns: list[list]) -> tuple[str, list]:
    """Other databases (SQLite): a portable multi-row VALUES list."""
    fields = _insert_fields()
    rows = len(columns[0])
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = _insert_head() + "VALUES " + ", ".join([placeholders] * rows) + ON_CONFLICT
    prepared = [
        _prepared_column(field, column) for field, column in zip(fields, columns, strict=True)
    ]
    params = [value for row in zip(*prepared, strict=True) for value in row]
    return sql, params


# Integer, key and text columns reach the driver as they are: their fields' get_db_prep_save
# returns ints and strings unchanged (or None). Times and UUIDs go through their field.
_DRIVER_READY = {"ForeignKey", "CharField", "PositiveSmallIntegerField", "BigIntegerField"}


def _prepared_column(field: Any, column: list) -> list:
    if field.get_internal_type() in _DRIVER_READY and all(
        value is None or type(value) in (int, str) for value in column
    ):
        return column
    is_uuid = field.name == "decision_id"
    cache: dict[Any, Any] = {}  # a batch repeats its times and decisions: convert each once
    prepared = []
    for value in column:
        if value not in cache:
            cache[value] = field.get_db_prep_save(UUID(value) if is_uuid else value, connection)
        prepared.append(cache[value])
    return prepared


def _event_bumps(accepted: list[_Pending]) -> tuple[list[Bump], set[int]]:
    """The counter effects of accepted events, aggregated per key (totals are kept per (key
    function, its arguments), each key made once at the end), and the accounts they touch."""
    totals: Counter[tuple] = Counter()
    touched: set[int] = set()
    if not accepted:
        return [], touched
    index = current_index()
    local_days: dict[tuple[int, datetime], date] = {}
    utc_days: dict[datetime, date] = {}
    impression, click = AdEvent.Type.IMPRESSION, AdEvent.Type.CLICK
    for _, claim, event_type, occurred, _ in accepted:
        advertiser_id = claim.advertiser_id
        day = local_days.get((advertiser_id, occurred))
        if day is None:
            tz = index.advertiser_tz.get(advertiser_id, UTC)
            day = local_days[(advertiser_id, occurred)] = occurred.astimezone(tz).date()
        utc_day = utc_days.get(occurred)
        if utc_day is None:
            utc_day = utc_days[occurred] = occurred.astimezone(UTC).date()
        cost = event_cost(claim, event_type)
        if cost:
            totals[(keys.spent_day, claim.line_item_id, day)] += cost
            totals[(keys.spent_lifetime, claim.line_item_id)] += cost
            totals[(keys.live, advertiser_id, day, "spend")] += cost
            currency = index.advertiser_currency.get(advertiser_id)
            if currency:
                totals[(keys.live_platform_spend, utc_day, currency)] += cost
        metric = LIVE_METRIC.get(event_type)
        if metric:
            totals[(keys.live, advertiser_id, day, metric)] += 1
            totals[(keys.live_platform, utc_day, metric)] += 1
        touched.add(advertiser_id)
        if event_type == impression:
            totals[(keys.creative_impressions, claim.creative_id)] += 1
            bucket = fatigue_bucket(occurred)
            totals[(keys.viewer_ads, claim.viewer_id, bucket)] += 1
            creative = index.creatives.get(claim.creative_id)
            if creative:
                totals[(keys.category_impressions, creative.category)] += 1
        elif event_type == click:
            totals[(keys.creative_clicks, claim.creative_id)] += 1
            creative = index.creatives.get(claim.creative_id)
            if creative:
                totals[(keys.category_clicks, creative.category)] += 1
    bumps = [
        Bump(key_of(*arguments), amount, keys.lifetime(key_of))
        for (key_of, *arguments), amount in totals.items()
    ]
    return bumps, touched


def _count(outcomes: list[EventOutcome], stored: _Stored, now: datetime) -> None:
    """Apply the stored events' backlog entry, count rejections by reason, and tell the
    dashboards. With the counters out of reach the entry waits for the drain, and the
    rejection tallies (statistics, not in the table) are skipped."""
    if stored.backlog_id is not None:
        backlog_apply(entry_id=stored.backlog_id, bumps=stored.bumps)
    rejected: Counter[str] = Counter(
        outcome.reason or "unknown" for outcome in outcomes if outcome.status != "accepted"
    )
    today = now.date()
    try:
        if rejected:
            counters().add_many(
                [
                    Bump(keys.invalid_events(reason, today), amount, keys.DAY_TTL)
                    for reason, amount in rejected.items()
                ]
            )
        live_publish(advertiser_ids=stored.advertiser_ids)
    except DeliveryStateUnavailable:
        pass
    except Exception:
        # The events are stored and counted: a channel layer that cannot send (its Redis
        # connections died with Redis) only delays the dashboards until their next message or
        # reload; answering the batch with an error would make the player send it again.
        logger.warning("Live dashboards not told of a batch.", exc_info=True)


def live_group(advertiser_id: int) -> str:
    """The Channels group of an account's open dashboards."""
    return f"advertiser-{advertiser_id}"


def live_publish(*, advertiser_ids: set[int]) -> None:
    """Tell the accounts' open dashboards that their numbers moved: at most one message per
    account per LIVE_INTERVAL, whatever the event rate (the dashboards re-read the counters
    again after the last message, so the final numbers always arrive). One round trip claims
    every account's throttle key, and one trip to an event loop sends every message."""
    layer = get_channel_layer()
    if layer is None or not advertiser_ids:
        return
    ordered = sorted(advertiser_ids)
    claimed = counters().claim_many(
        [keys.live_throttle(advertiser_id) for advertiser_id in ordered], ttl=LIVE_INTERVAL
    )
    groups = [live_group(a) for a, won in zip(ordered, claimed, strict=True) if won]
    if not groups:
        return
    if getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None:
        # A sync view under ASGI (run by sync_to_async): async_to_sync uses the server's loop.
        async_to_sync(_group_send_all)(layer, groups)
    else:
        _publisher.run(_group_send_all(layer, groups))


async def _group_send_all(layer: BaseChannelLayer, groups: list[str]) -> None:
    await asyncio.gather(
        *(layer.group_send(group, {"type": "delivery.changed"}) for group in groups)
    )


_publisher = Publisher("live-publish")
