"""Frequency caps rebuilt from the impressions: every viewer's at once (a heal's second phase,
`ads.services.rebuild.counters_rebuild`), or one viewer's when a decision needs them before
that phase is written (`viewer_caps_load`).

Between a heal's phases the budgets are known and the caps are not: a pod holding a viewer's
cap keys is refused by the store until that viewer's counts were read (`keys.viewer_caps_known`,
ViewerStateUnknown). The engine then calls `viewer_caps_load`, which reads the viewer's
impressions (one indexed query: the last 26 hours for hour and day caps, all of them for
lifetime caps), raises the viewer's cap keys to those counts and sets the marker in one step,
and reserves again. So a capped line item serves again as soon as the budgets are known, one
query per viewer, without waiting for the millions of keys of the second phase.

Why raising (never lowering) is exact: a cap key moves only by reservations, and none is made
for a viewer before its marker is set, so when the counts are raised to, the key holds only
what a heal raised it to already. Two processes loading one viewer, or the second phase
writing its older snapshot after a load, each raise to a count of impressions the table held;
every impression counted there came from a decision whose reservation is either forgotten
(made before the loss: the count is all that is left of it) or in the key already (made after
the marker, then it is in the key and in the count, and max takes it once). A key is never
below the table's count, nor above the table's count plus the reservations made since the
loss, which is what it held before. (As before: a decision made just before the loss whose
impression has not arrived when its viewer is read is forgotten.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from ads.decisioning.index import LineItemEntry, current_index
from ads.delivery import keys
from ads.delivery.counters import Bump, Counters, counters
from ads.models import AdEvent

# A local day began at most 26 hours ago, whatever the zone.
TODAY_REACH = timedelta(hours=26)


def cap_values(*, viewer_id: int | None = None, now: datetime | None = None) -> Counter[tuple]:
    """Impressions per viewer (or of one viewer) under each cap of the live line items (the
    index's): this local hour's and day's, and ever for a lifetime cap, per (key function, its
    arguments). Caps are reserved at the decision, so a decision whose impression never came
    counted too; rebuilt from the impressions, a cap forgets those (at most the decisions
    served just before the loss)."""
    now = now or timezone.now()
    capped = {entry.id: entry for entry in current_index().line_items if entry.capped}
    if not capped:
        return Counter()
    impressions = AdEvent.objects.filter(event_type=AdEvent.Type.IMPRESSION)
    ever = [entry.id for entry in capped.values() if entry.cap_lifetime]
    if viewer_id is None:
        impressions = impressions.filter(line_item__in=list(capped))
        ever_shown = impressions.filter(line_item__in=ever)
    else:
        # One viewer's few hundred impressions a day: the line items are picked here (a list
        # of hundreds of ids costs more to send and plan than the rows it would leave out).
        impressions = ever_shown = impressions.filter(viewer=viewer_id)
    lifetime: Iterable[tuple[int, int, int]] = (
        ever_shown.values_list("line_item", "viewer").annotate(shown=Count("id")) if ever else []
    )
    today = impressions.occurred_between(now - TODAY_REACH, None).values_list(
        "line_item", "viewer", "occurred_at"
    )
    return _counted(capped, lifetime, today.iterator(chunk_size=10_000), now)


def _counted(
    capped: dict[int, LineItemEntry],
    lifetime: Iterable[tuple[int, int, int]],
    today: Iterable[tuple[int, int, datetime]],
    now: datetime,
) -> Counter[tuple]:
    values: Counter[tuple] = Counter()
    for line_item_id, viewer_id, shown in lifetime:
        entry = capped.get(line_item_id)
        if entry is not None and entry.cap_lifetime:
            values[(keys.cap_lifetime, line_item_id, viewer_id)] = shown
    local_now = {}
    for line_item_id, viewer_id, occurred_at in today:
        entry = capped.get(line_item_id)
        if entry is None:
            continue
        if entry.tz not in local_now:
            local_now[entry.tz] = now.astimezone(entry.tz)
        local, local_today = occurred_at.astimezone(entry.tz), local_now[entry.tz]
        if local.date() != local_today.date():
            continue
        if entry.cap_day:
            values[(keys.cap_day, line_item_id, viewer_id, local.date())] += 1
        if entry.cap_hour and local.hour == local_today.hour:
            # The key's hour is the local one (eligibility.cap_keys).
            hour = local.replace(minute=0, second=0, microsecond=0)
            values[(keys.cap_hour, line_item_id, viewer_id, hour)] += 1
    return values


def cap_floors(values: Counter[tuple]) -> list[Bump]:
    """`cap_values` as the bumps `Counters.raise_many` raises the keys to, each with its key's
    lifetime."""
    return [
        Bump(key_of(*arguments), shown, keys.lifetime(key_of))
        for (key_of, *arguments), shown in values.items()
    ]


def viewer_caps_load(
    *, viewer_id: int, store: Counters | None = None, now: datetime | None = None
) -> int:
    """Read one viewer's frequency caps from the event table and raise its cap keys to them,
    with `keys.viewer_caps_known` set in the same step: from then, between a heal's phases,
    pods holding this viewer's cap keys are reserved (see the module docstring for why this
    is exact with concurrent loads, reservations and the second phase). `now`: the decision's
    instant, whose hour and day the cap keys name (default: the clock). Returns the keys
    raised to."""
    store = store or counters()
    floors = cap_floors(cap_values(viewer_id=viewer_id, now=now))
    marker = Bump(keys.viewer_caps_known(viewer_id), 1, keys.lifetime(keys.viewer_caps_known))
    store.raise_many(floors, marker=marker)
    return len(floors)
