"""The counters rebuilt from the event table: spend, reservations, frequency caps,
click-through, fatigue and live totals, after Redis lost its state (or in a new counters file),
in two phases so that budgets serve again before the caps are read (`counters_rebuild`).
`ads.services.recovery` decides when to heal and holds what waits meanwhile (the backlog);
the event path (`ads.services.events`) counts what is stored after."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ads.delivery import keys
from ads.delivery.counters import Bump, Counters, DeliveryStateUnavailable, counters
from ads.learning.features import fatigue_bucket
from ads.models import AdEvent, Advertiser, CounterBacklog, Creative, LineItem
from ads.services.caps import cap_values
from ads.services.events import LIVE_METRIC
from ads.services.recovery import HealInProgress
from ads.services.totals import TotalsRead, totals_read


def counters_rebuild(
    *,
    since: datetime | None = None,
    store: Counters | None = None,
    after_budgets: Callable[[], object] | None = None,
) -> int:
    """Recompute spend, frequency caps, click-through and live counters from the event table
    (after losing Redis, or in a new counters file), in `store` (default: the process's
    counters), and mark them known. Returns the number of keys written.

    Spend per line item and local day (the whole days after `since`, default two days ago: a
    day partly before it has no known total), and lifetime; each capped line item's impressions
    per viewer this hour and today (its local ones) and, with a lifetime cap, ever; impressions
    and clicks per creative and category, and per viewer and ten-minute bucket over the last
    three hours (the CTR model's fatigue); the live totals of each account (per local day) and
    of the platform (per UTC day) for the days that began after `since`, so the dashboards'
    "today" equals the event table's. Reservations made by decisions are set to at least the
    spend, so budgets hold.

    In two phases, so that what is known serves as soon as it is written:

    1. spend, reservations, click-through and live totals, from the event totals plus the
       events stored after them (`ads.services.totals`: the last 15–30 minutes, not a scan of
       the whole table), and the backlog entries the snapshot holds marked as counted on
       those keys, then `keys.budgets_known`: from here every line item serves (with caps,
       once the viewer's caps are read: `ads.services.caps.viewer_caps_load`, at its first
       decision), and the backlog entries committed after the snapshot are applied on those
       keys (a CPC line item's clicks);
    2. the frequency caps and fatigue buckets (one key per viewer: most of the time; caps
       raised to, never lowered, so what was reserved meanwhile stays), then the epoch:
       everything is known, and the entries' effects on the viewers' keys are applied.

    `after_budgets`, when given, is called between the two (the tests and the bench).

    It holds the healing key, with a token of its own, throughout (HealInProgress if another
    process does; renewed while it runs, `_claim_kept`), so nothing is applied or reserved
    before phase 1 is written (nor, before phase 2, anything on a viewer's keys but the caps
    of a viewer whose caps were read); reads the table in one snapshot and deletes there the
    backlog entries that snapshot holds (their events are counted here, and phase 2 marks
    them whole), so each part of an entry is counted by the rebuild or from the backlog,
    never both; and stops (DeliveryStateUnavailable) when the claim no longer holds its
    token: lost with the store's state during the heal, or taken by another heal since (see
    `ads.services.recovery`).
    """
    store = store or counters()
    # This heal's own: a heal that outlives its claim (Redis restarted empty, another heal
    # claimed the key since) must not renew, mark known or release another's.
    token = secrets.randbelow(2**62) + 2
    if not store.claim(keys.healing(), ttl=keys.HEAL_TTL, token=token):
        raise HealInProgress()
    held = [keys.healing()]
    try:
        with _claim_kept(store, held, token):
            # A heal that died between its phases left budgets known: not so again until this
            # one has written them, so nothing is reserved between its reading of the
            # reservations and its writing of them.
            store.release(keys.budgets_known())
            with _snapshot():
                values = _summed_values(since or timezone.now() - timedelta(days=2))
                counted = list(CounterBacklog.objects.values_list("pk", flat=True))
                for entry_id in counted:
                    values[(keys.applied, entry_id)] = keys.APPLIED_BUDGETS
                written = _write_rebuilt(store, values, held=held, token=token)
                store.hold([keys.healing(), keys.budgets_known()], ttl=keys.HEAL_TTL, token=token)
                held.append(keys.budgets_known())
                if after_budgets is not None:
                    after_budgets()
                per_viewer = cap_values()
                per_viewer.update(_fatigue_values())
                # The entries counted here are whole once these are written: a request still
                # holding one (it stored the entry before the snapshot and applies it after
                # the epoch, or healed here itself) must not add its viewers' part again.
                for entry_id in counted:
                    per_viewer[(keys.applied, entry_id)] = keys.APPLIED_ALL
                for start in range(0, len(counted), DELETE_CHUNK):
                    chunk = counted[start : start + DELETE_CHUNK]
                    CounterBacklog.objects.filter(pk__in=chunk).delete()
            written += _write_rebuilt(store, per_viewer, held=held, token=token)
            store.mark_known(claim=token)
    except BaseException:
        store.release_heal(claim=token)
        raise
    # Every process builds its index again (the version key may have been lost with the rest).
    store.add_many([Bump(keys.index_version(), 1)])
    return written


# Keys a heal writes at a time, renewing its claim in between (see `_write_rebuilt`).
WRITE_CHUNK = 50_000
CLAIM_RENEWAL_SECONDS = keys.HEAL_TTL / 4  # see `_claim_kept`
# A heal still running after this is taken for hung (a 10-million-event day heals in ~2.5
# minutes on a loaded 2-core machine): its claim runs out and another heal starts over.
HEAL_RENEWED_FOR = 30 * 60
DELETE_CHUNK = 10_000  # backlog ids a DELETE names: under SQLite's limit on bound variables
# Raised to, never lowered by a rebuild: decisions may have reserved more than the events show.
_RESERVATIONS = frozenset(
    {keys.reserved_day, keys.reserved_lifetime, keys.cap_hour, keys.cap_day, keys.cap_lifetime}
)


def _write_rebuilt(
    store: Counters, values: Counter[tuple], *, held: Sequence[str], token: int
) -> int:
    """Write rebuilt values (per key function and its arguments), each key with its lifetime;
    a reservation or cap is raised to its value, never lowered (`raise_many`, in the store:
    decisions may have reserved more than the events show, and between a heal's phases a
    viewer's caps are read and reserved while this one writes them, ads.services.caps).
    Returns the keys written. Written WRITE_CHUNK keys at a time, the heal's own keys (`held`:
    the healing claim, and budgets known once set) renewed before each chunk while the claim
    holds this heal's token (`hold`): a claim that ran out during a long write would let a
    second heal start over this one's writes, and one lost with the store's state (Redis
    restarted again) or taken by another heal since stops this heal."""
    floors: list[Bump] = []
    by_lifetime: dict[int | None, dict[str, int]] = {}
    for (key_of, *arguments), value in values.items():
        if key_of in _RESERVATIONS:
            floors.append(Bump(key_of(*arguments), value, keys.lifetime(key_of)))
        else:
            by_lifetime.setdefault(keys.lifetime(key_of), {})[key_of(*arguments)] = value
    for start in range(0, len(floors), WRITE_CHUNK):
        store.hold(held, ttl=keys.HEAL_TTL, token=token)
        store.raise_many(floors[start : start + WRITE_CHUNK])
    for seconds, group in by_lifetime.items():
        pairs = list(group.items())
        for start in range(0, len(pairs), WRITE_CHUNK):
            store.hold(held, ttl=keys.HEAL_TTL, token=token)
            store.set_many(dict(pairs[start : start + WRITE_CHUNK]), ttl=seconds)
    return len(values)


@contextmanager
def _claim_kept(store: Counters, held: list[str], token: int) -> Iterator[None]:
    """Renew the heal's keys (`held`: its claim, and budgets known once set) every
    CLAIM_RENEWAL_SECONDS from a thread while the heal runs: its reads, phase 2's of a busy
    day's caps above all, can outlast the claim on a loaded machine (the writes renew it
    between chunks too). Renewed only while the claim holds this heal's token (`hold`): a
    claim lost with the store's state stays lost, or another heal's, and the heal's next step
    stops it; a heal that dies, or hangs past HEAL_RENEWED_FOR, stops renewing, so another
    takes over once its claim runs out."""
    stop = threading.Event()
    until = time.monotonic() + HEAL_RENEWED_FOR

    def renew() -> None:
        while not stop.wait(CLAIM_RENEWAL_SECONDS) and time.monotonic() < until:
            try:
                store.hold(list(held), ttl=keys.HEAL_TTL, token=token)
            except DeliveryStateUnavailable:
                return

    keeper = threading.Thread(target=renew, name="counters-heal-claim", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


@contextmanager
def _snapshot() -> Iterator[None]:
    """One transaction that reads the table as of one moment (REPEATABLE READ on PostgreSQL,
    when it is the outermost)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _summed_values(since: datetime, *, scan: bool = False) -> Counter[tuple]:
    """Spend (lifetime and per day), click-through and live totals: from the event totals
    and the events stored after them (`ads.services.totals`), or, without totals reaching
    back to `since` (or with `scan`), from the whole table. Both give the same values."""
    read = None if scan else totals_read(since=since)
    if read is None:
        values = _spend_values(since)
        values.update(_creative_values())
        values.update(_live_totals(since))
        return values
    return _values_from_totals(read, since)


def _values_from_totals(read: TotalsRead, since: datetime) -> Counter[tuple]:
    """What `_spend_values`, `_creative_values` and `_live_totals` read from the whole table,
    from the totals' rows plus the tail (the same keys, zeros included)."""
    values: Counter[tuple] = Counter()
    accounts = {
        pk: (ZoneInfo(zone), currency)
        for pk, zone, currency in Advertiser.objects.values_list("pk", "timezone", "currency")
    }
    categories = dict(Creative.objects.values_list("pk", "category"))
    impression, click = AdEvent.Type.IMPRESSION, AdEvent.Type.CLICK
    lifetime = [*read.lifetime]
    lifetime += [
        (r.line_item_id, r.creative_id, r.event_type, r.events, r.cost_micros) for r in read.tail
    ]
    for line_item_id, creative_id, event_type, events, cost in lifetime:
        values[(keys.spent_lifetime, line_item_id)] += cost
        values[(keys.reserved_lifetime, line_item_id)] += cost
        category = categories.get(creative_id)
        shown = events if event_type == impression else 0
        clicked = events if event_type == click else 0
        values[(keys.creative_impressions, creative_id)] += shown
        values[(keys.creative_clicks, creative_id)] += clicked
        values[(keys.category_impressions, category)] += shown
        values[(keys.category_clicks, category)] += clicked
    first_utc_day = since.astimezone(UTC).date() + timedelta(days=1)
    spent: Counter[tuple] = Counter()
    live: Counter[tuple] = Counter()
    for row in [*read.days, *read.tail]:
        tz, currency = accounts[row.advertiser_id]
        metric = LIVE_METRIC.get(row.event_type)
        if row.local_day >= since.astimezone(tz).date() + timedelta(days=1):
            spent[(row.line_item_id, row.local_day)] += row.cost_micros
            if metric:
                live[(keys.live, row.advertiser_id, row.local_day, metric)] += row.events
            live[(keys.live, row.advertiser_id, row.local_day, "spend")] += row.cost_micros
        if row.utc_day >= first_utc_day:
            if metric:
                live[(keys.live_platform, row.utc_day, metric)] += row.events
            live[(keys.live_platform_spend, row.utc_day, currency)] += row.cost_micros
    for (line_item_id, day), cost in spent.items():
        if cost:  # as the scan, which reads the events that cost something
            values[(keys.spent_day, line_item_id, day)] = cost
            values[(keys.reserved_day, line_item_id, day)] = cost
    for key, amount in live.items():
        metric_or_currency = key[-1]
        is_spend = key[0] is keys.live_platform_spend or metric_or_currency == "spend"
        if amount or not is_spend:
            values[key] += amount
    return values


def _spend_values(since: datetime) -> Counter[tuple]:
    values: Counter[tuple] = Counter()
    line_items = {
        line_item.pk: line_item
        for line_item in LineItem.objects.select_related("advertiser").only(
            "pk", "pricing", "advertiser__timezone"
        )
    }
    lifetime = AdEvent.objects.values("line_item").annotate(spent=Sum("cost_micros"))
    for row in lifetime:
        spent = row["spent"] or 0
        values[(keys.spent_lifetime, row["line_item"])] = spent
        # Reservations cover at least what was spent (CPM reserves at the decision).
        values[(keys.reserved_lifetime, row["line_item"])] = spent
    recent = (
        AdEvent.objects.occurred_between(since, None)
        .filter(cost_micros__gt=0)
        .values_list("line_item", "occurred_at", "cost_micros")
    )
    for line_item_id, occurred_at, cost in recent.iterator(chunk_size=10_000):
        tz = line_items[line_item_id].advertiser.tzinfo
        day = occurred_at.astimezone(tz).date()
        if day <= since.astimezone(tz).date():  # a day partly before `since`: total unknown
            continue
        values[(keys.spent_day, line_item_id, day)] += cost
        values[(keys.reserved_day, line_item_id, day)] += cost
    return values


def _creative_values() -> Counter[tuple]:
    values: Counter[tuple] = Counter()
    stats = AdEvent.objects.values("creative", "creative__category").annotate(
        impressions=Count("id", filter=Q(event_type=AdEvent.Type.IMPRESSION)),
        clicks=Count("id", filter=Q(event_type=AdEvent.Type.CLICK)),
    )
    for stat in stats:
        values[(keys.creative_impressions, stat["creative"])] = stat["impressions"]
        values[(keys.creative_clicks, stat["creative"])] = stat["clicks"]
        values[(keys.category_impressions, stat["creative__category"])] += stat["impressions"]
        values[(keys.category_clicks, stat["creative__category"])] += stat["clicks"]
    return values


def _fatigue_values() -> Counter[tuple]:
    """The viewers' impressions per ten-minute bucket, as long as the CTR model reads them."""
    values: Counter[tuple] = Counter()
    recent_from = timezone.now() - timedelta(seconds=keys.VIEWER_ADS_TTL)
    seen = (
        AdEvent.objects.occurred_between(recent_from, None)
        .filter(event_type=AdEvent.Type.IMPRESSION)
        .values_list("viewer_id", "occurred_at")
    )
    for viewer_id, occurred_at in seen.iterator(chunk_size=10_000):
        values[(keys.viewer_ads, viewer_id, fatigue_bucket(occurred_at))] += 1
    return values


def _live_totals(since: datetime) -> Counter[tuple]:
    """The live counters of every whole day after `since`: per account and its local day (one
    grouped query per time zone in use), and per UTC day for the platform."""
    values: Counter[tuple] = Counter()
    recent = AdEvent.objects.occurred_between(since, None)
    zones = sorted(set(Advertiser.objects.values_list("timezone", flat=True)))
    grouped: list[tuple[str, QuerySet[AdEvent], tuple[str, ...]]] = [
        (zone, recent.filter(advertiser__timezone=zone), ("advertiser", "day", "event_type"))
        for zone in zones
    ]
    grouped.append(("UTC", recent, ("day", "event_type", "advertiser__currency")))
    for zone, events, by in grouped:
        tz = ZoneInfo(zone)
        first_whole_day = since.astimezone(tz).date() + timedelta(days=1)
        rows = (
            events.annotate(day=TruncDate("occurred_at", tzinfo=tz))
            .values(*by)
            .annotate(events=Count("id"), spent=Sum("cost_micros"))
        )
        for row in rows:
            if row["day"] < first_whole_day:  # a day partly before `since`: its total is unknown
                continue
            if "advertiser" in row:
                key: tuple = (keys.live, row["advertiser"], row["day"])
            else:
                key = (keys.live_platform, row["day"])
            metric = LIVE_METRIC.get(row["event_type"])
            if metric:
                values[(*key, metric)] += row["events"]
            if not row["spent"]:
                continue
            if "advertiser" in row:
                values[(*key, "spend")] += row["spent"]
            else:  # the platform's spend, per currency
                values[(keys.live_platform_spend, row["day"], row["advertiser__currency"])] += row[
                    "spent"
                ]
    return values
