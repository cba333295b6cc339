"""Ad events: checked against their signed token, stored once, counted once.

The AdEvent table is the truth. An event's id is its decision, creative and type, so the same
event reported twice, through a tracking link or a batch, or both, is stored once; the insert
itself decides (ON CONFLICT DO NOTHING ... RETURNING), so concurrent duplicates cannot both
count. Counters (spend, creative click-through, live stats) are bumped only for rows the insert
returned, and `counters_rebuild` recomputes them from the table after a cache loss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from ads.decisioning import keys
from ads.decisioning.counters import Bump, counters
from ads.decisioning.index import current_index
from ads.decisioning.tokens import InvalidToken, TrackingClaim, read_token
from ads.models import AdEvent, Creative, LineItem
from catalog.models import Title, Viewer

MAX_BATCH = 1000
LIVE_INTERVAL = 0.25  # seconds between two live messages to one account's dashboards
LIVE_METRIC = {
    AdEvent.Type.IMPRESSION: "impressions",
    AdEvent.Type.CLICK: "clicks",
    AdEvent.Type.COMPLETE: "completes",
}
CLOCK_SKEW = timedelta(minutes=5)
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
# Every other event of a slot needs that slot's impression first.
NEEDS_IMPRESSION = frozenset(AdEvent.Type.values) - {AdEvent.Type.IMPRESSION}


@dataclass(frozen=True)
class IncomingEvent:
    token: str
    event_type: str
    client_event_id: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class EventOutcome:
    status: str  # accepted, duplicate or rejected
    reason: str | None = None
    claim: TrackingClaim | None = None
    client_event_id: str = ""


def is_bot(user_agent: str) -> bool:
    agent = user_agent.lower()
    return any(marker in agent for marker in BOT_USER_AGENTS)


def event_track(
    *, token: str, event_type: str, user_agent: str = "", at: datetime | None = None
) -> EventOutcome:
    """One event from a tracking link."""
    (outcome,) = events_record(
        events=[IncomingEvent(token=token, event_type=event_type)],
        user_agent=user_agent,
        at=at,
    )
    return outcome


def events_record(
    *, events: list[IncomingEvent], user_agent: str = "", at: datetime | None = None
) -> list[EventOutcome]:
    """Check, store and count a batch of events; one outcome per event, in order.

    1. Each token must be genuine and unexpired, the type known, the user agent not a bot's,
       and a reported time within the token's life (with CLOCK_SKEW either way).
    2. Within the batch, a repeated event is a duplicate; impressions are taken first, so a
       batch may carry a slot's impression and its later events together.
    3. Events other than impressions need their slot's impression (stored or in this batch).
    4. One INSERT ... ON CONFLICT DO NOTHING RETURNING: rows it returns are accepted, the others
       were already stored (duplicates).
    5. Counters move for accepted events only; rejections are counted by reason.
    """
    if len(events) > MAX_BATCH:
        raise ValueError(f"At most {MAX_BATCH} events in one batch.")
    now = at or timezone.now()
    outcomes: list[EventOutcome | None] = [None] * len(events)
    pending: list[tuple[int, TrackingClaim, str, datetime]] = []
    bot = is_bot(user_agent)
    for position, event in enumerate(events):
        try:
            claim = read_token(event.token, at=now)
        except InvalidToken as error:
            outcomes[position] = EventOutcome("rejected", error.reason, None, event.client_event_id)
            continue
        reason = None
        occurred = event.occurred_at or now
        if event.event_type not in AdEvent.Type.values:
            reason = "unknown_event_type"
        elif bot:
            reason = "bot"
        elif not claim.issued_at - CLOCK_SKEW <= occurred <= now + CLOCK_SKEW:
            reason = "bad_timestamp"
        if reason:
            outcomes[position] = EventOutcome("rejected", reason, claim, event.client_event_id)
        else:
            pending.append((position, claim, event.event_type, occurred))

    pending.sort(key=lambda item: (item[2] != AdEvent.Type.IMPRESSION, item[0]))
    seen: set[str] = set()
    unique = []
    for position, claim, event_type, occurred in pending:
        event_id = claim.event_id(event_type)
        if event_id in seen:
            outcomes[position] = EventOutcome(
                "duplicate", "replayed", claim, events[position].client_event_id
            )
        else:
            seen.add(event_id)
            unique.append((position, claim, event_type, occurred))

    unique = _with_impressions(unique, outcomes, events)
    unique = _with_known_references(unique, outcomes, events)
    inserted = _insert(unique, events, now)
    for position, claim, event_type, _ in unique:
        if claim.event_id(event_type) in inserted:
            outcomes[position] = EventOutcome(
                "accepted", None, claim, events[position].client_event_id
            )
        else:
            outcomes[position] = EventOutcome(
                "duplicate", "replayed", claim, events[position].client_event_id
            )
    final = [outcome for outcome in outcomes if outcome is not None]
    _count(final, unique, inserted, now)
    return final


def _with_impressions(unique, outcomes, events):
    needed = {
        claim.event_id(AdEvent.Type.IMPRESSION)
        for _, claim, event_type, _ in unique
        if event_type in NEEDS_IMPRESSION
    }
    in_batch = {
        claim.event_id(event_type)
        for _, claim, event_type, _ in unique
        if event_type == AdEvent.Type.IMPRESSION
    }
    stored = set(
        AdEvent.objects.filter(event_id__in=needed - in_batch).values_list("event_id", flat=True)
    )
    kept = []
    for item in unique:
        position, claim, event_type, _ = item
        impression = claim.event_id(AdEvent.Type.IMPRESSION)
        if event_type in NEEDS_IMPRESSION and impression not in in_batch | stored:
            outcomes[position] = EventOutcome(
                "rejected", "no_impression", claim, events[position].client_event_id
            )
        else:
            kept.append(item)
    return kept


def _with_known_references(unique, outcomes, events):
    """A genuine token can outlive its creative, viewer or title (deleted by staff)."""
    if not unique:
        return unique
    creatives = set(
        Creative.objects.filter(pk__in={item[1].creative_id for item in unique}).values_list(
            "pk", flat=True
        )
    )
    viewers = set(
        Viewer.objects.filter(pk__in={item[1].viewer_id for item in unique}).values_list(
            "pk", flat=True
        )
    )
    titles = set(
        Title.objects.filter(pk__in={item[1].title_id for item in unique}).values_list(
            "pk", flat=True
        )
    )
    kept = []
    for item in unique:
        position, claim, _, _ = item
        if (
            claim.creative_id in creatives
            and claim.viewer_id in viewers
            and claim.title_id in titles
        ):
            kept.append(item)
        else:
            outcomes[position] = EventOutcome(
                "rejected", "unknown_reference", claim, events[position].client_event_id
            )
    return kept


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
    "received_at",
    "cost_micros",
]


def event_cost(claim: TrackingClaim, event_type: str) -> int:
    """CPM line items pay at the impression, CPC line items at the click."""
    if claim.is_cpm:
        return claim.price_micros if event_type == AdEvent.Type.IMPRESSION else 0
    return claim.price_micros if event_type == AdEvent.Type.CLICK else 0


def _insert(unique, events, now: datetime) -> set[str]:
    if not unique:
        return set()
    concrete = {field.name: field for field in AdEvent._meta.concrete_fields}
    fields = [concrete[name] for name in INSERT_FIELDS]
    rows = []
    for position, claim, event_type, occurred in unique:
        values = {
            "advertiser": claim.advertiser_id,
            "line_item": claim.line_item_id,
            "creative": claim.creative_id,
            "viewer": claim.viewer_id,
            "title": claim.title_id,
            "ad_break": claim.ad_break_id,
            "event_type": event_type,
            "event_id": claim.event_id(event_type),
            "client_event_id": events[position].client_event_id[:80],
            "decision_id": UUID(claim.decision_id),
            "pod_position": claim.position,
            "device": claim.device,
            "region": claim.region,
            "occurred_at": occurred,
            "received_at": now,
            "cost_micros": event_cost(claim, event_type),
        }
        rows.append([field.get_db_prep_save(values[field.name], connection) for field in fields])
    columns = ", ".join(connection.ops.quote_name(field.attname) for field in fields)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {AdEvent._meta.db_table} ({columns}) VALUES "
        + ", ".join([placeholders] * len(rows))
        + " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
        return {event_id for (event_id,) in cursor.fetchall()}


def _count(outcomes: list[EventOutcome], unique, inserted: set[str], now: datetime) -> None:
    """Bump the counters of accepted events, aggregated per key, in one round trip."""
    totals: Counter[str] = Counter()
    touched: set[int] = set()
    index = current_index()
    for _, claim, event_type, occurred in unique:
        if claim.event_id(event_type) not in inserted:
            continue
        tz = index.advertiser_tz.get(claim.advertiser_id, UTC)
        day = occurred.astimezone(tz).date()
        cost = event_cost(claim, event_type)
        if cost:
            totals[keys.spent_day(claim.line_item_id, day)] += cost
            totals[keys.spent_lifetime(claim.line_item_id)] += cost
        metric = LIVE_METRIC.get(event_type)
        if metric:
            totals[keys.live(claim.advertiser_id, day, metric)] += 1
            totals[keys.live_platform(occurred.astimezone(UTC).date(), metric)] += 1
        if cost:
            totals[keys.live(claim.advertiser_id, day, "spend")] += cost
            totals[keys.live_platform(occurred.astimezone(UTC).date(), "spend")] += cost
        touched.add(claim.advertiser_id)
        creative = index.creatives.get(claim.creative_id)
        if event_type == AdEvent.Type.IMPRESSION:
            totals[keys.creative_impressions(claim.creative_id)] += 1
            if creative:
                totals[keys.category_impressions(creative.category)] += 1
        elif event_type == AdEvent.Type.CLICK:
            totals[keys.creative_clicks(claim.creative_id)] += 1
            if creative:
                totals[keys.category_clicks(creative.category)] += 1
    for outcome in outcomes:
        if outcome.status != "accepted":
            totals[keys.invalid_events(outcome.reason or "unknown", now.date())] += 1
    if totals:
        counters().add_many([Bump(key, amount, _ttl(key)) for key, amount in totals.items()])
    live_publish(advertiser_ids=touched)


def live_group(advertiser_id: int) -> str:
    """The Channels group of an account's open dashboards."""
    return f"advertiser-{advertiser_id}"


def live_publish(*, advertiser_ids: set[int]) -> None:
    """Tell the accounts' open dashboards that their numbers moved: at most one message per
    account per LIVE_INTERVAL, whatever the event rate (the dashboards re-read the counters
    again after the last message, so the final numbers always arrive)."""
    layer = get_channel_layer()
    if layer is None:
        return
    store = counters()
    for advertiser_id in advertiser_ids:
        if store.claim(keys.live_throttle(advertiser_id), ttl=LIVE_INTERVAL):
            async_to_sync(layer.group_send)(live_group(advertiser_id), {"type": "delivery.changed"})


def _ttl(key: str) -> int | None:
    return None if key.endswith(":life") or ":cr:" in key or ":cat:" in key else keys.DAY_TTL


def counters_rebuild(*, since: datetime | None = None) -> int:
    """Recompute spend and click-through counters from the event table (after losing Redis).

    Spend per line item and local day (for the days since `since`, default the last two), and
    lifetime; impressions and clicks per creative and category. Reservations made by decisions
    are set to at least the spend, so budgets hold. Returns the number of keys written.
    """
    since = since or timezone.now() - timedelta(days=2)
    values: dict[str, int] = {}
    line_items = {
        line_item.pk: line_item
        for line_item in LineItem.objects.select_related("advertiser").only(
            "pk", "pricing", "advertiser__timezone"
        )
    }
    lifetime = AdEvent.objects.values("line_item").annotate(spent=Sum("cost_micros"))
    for row in lifetime:
        values[keys.spent_lifetime(row["line_item"])] = row["spent"] or 0
    recent = AdEvent.objects.filter(occurred_at__gte=since, cost_micros__gt=0).values_list(
        "line_item", "occurred_at", "cost_micros"
    )
    for line_item_id, occurred_at, cost in recent.iterator(chunk_size=10_000):
        tz = line_items[line_item_id].advertiser.tzinfo
        key = keys.spent_day(line_item_id, occurred_at.astimezone(tz).date())
        values[key] = values.get(key, 0) + cost
    for key, value in list(values.items()):
        # Reservations cover at least what was spent (CPM reserves at the decision).
        values[key.replace(":spent:", ":res:")] = value
    stats = AdEvent.objects.values("creative", "creative__category").annotate(
        impressions=Count("id", filter=Q(event_type=AdEvent.Type.IMPRESSION)),
        clicks=Count("id", filter=Q(event_type=AdEvent.Type.CLICK)),
    )
    by_category: Counter[str] = Counter()
    for stat in stats:
        values[keys.creative_impressions(stat["creative"])] = stat["impressions"]
        values[keys.creative_clicks(stat["creative"])] = stat["clicks"]
        by_category[keys.category_impressions(stat["creative__category"])] += stat["impressions"]
        by_category[keys.category_clicks(stat["creative__category"])] += stat["clicks"]
    values.update(by_category)
    store = counters()
    current = dict(zip(values, store.get_many(list(values)), strict=True))
    # Never lower a reservation: decisions may have reserved more than was spent.
    values = {
        key: max(value, current[key]) if ":res:" in key else value for key, value in values.items()
    }
    daily = {key: value for key, value in values.items() if _ttl(key)}
    store.set_many(daily, ttl=keys.DAY_TTL)
    store.set_many({key: value for key, value in values.items() if key not in daily})
    return len(values)
