"""Faults: counters that heal themselves, a backlog that keeps stored events' counter effects
until the counters take them (database work whose connection was lost is retried by
`config.db.retried_on_lost_connection`).

The protocol, which keeps every counter exact through a Redis restart (nothing lost, nothing
counted twice, no budget or cap spent again):

1. An event batch is stored with its counter effects (one `CounterBacklog` entry) in one
   transaction. After the commit the entry is applied (`backlog_apply`): the store adds the
   bumps and records the entry's id in one step, then the entry is deleted. If the counters
   cannot be reached, the entry stays; the answer is still the truth (`accepted`).
2. Each server's refresher drains the backlog every second (`counters_backlog_drain`): entries
   the store already recorded are only deleted, the others applied.
3. A store that lost its state (no epoch key) refuses reservations and applications until the
   first process to notice heals it (`counters_heal`): it claims the healing key (refused:
   another process heals) and rebuilds the counters from the event table in one snapshot of
   the database, in two phases (`counters_rebuild`). Phase 1 writes spend, reservations,
   click-through and live totals (from the event totals and their tail: about a second on a
   busy day) and sets `keys.budgets_known`; phase 2 reads and writes the frequency caps and
   fatigue buckets (a key per viewer: a minute or two on a busy day), deletes in the snapshot
   the backlog entries the rebuild counted, commits and sets the epoch. Entries committed
   after the snapshot were not counted by the rebuild and are applied by the next drain.
4. What may be reserved meanwhile, so that the rebuild's values are never overwritten and no
   budget or cap is passed:
   - before phase 1 is written: nothing (a decision is an empty pod, reason `degraded`);
   - between the phases: only reservations whose own limits bound them
     (`reserve(..., whole_state=False)`), the pods of CPM line items
     (`LineItemEntry.serves_while_healing`): each reservation adds to the rebuilt reservation
     (≥ the spend the table shows) within the budget, in the same atomic step as before.
     A pod holding a viewer's cap keys is refused by the store until that viewer's caps are
     read (`keys.viewer_caps_known`, ViewerStateUnknown): the engine then reads them from the
     table (`ads.services.caps.viewer_caps_load`: one indexed query, the keys raised to the
     counts and the marker set in one step) and reserves again, so a capped line item serves
     each viewer within its caps from the first decision after phase 1. A CPC line item
     waits: its budget counts clicks, which wait in the backlog until phase 2 ends. Phase 2
     writes cap and fatigue keys: fatigue keys nothing moves between the phases (they are
     only applied from the backlog), cap keys raised to their counts, never lowered
     (`raise_many`), so a reservation made meanwhile is kept (ads.services.caps says why
     that is exact). The CTR model's fatigue columns are features, not limits: a decision
     between the phases scores them unknown (NaN), as it does for a champion without them,
     never as zeros (and with only CPM line items eligible, no pCTR is asked for anyway).
   - Backlog entries are applied only once the epoch is set: their events were stored after
     the snapshot (or the snapshot deleted them), and applying them between the phases could
     not be told apart from the rebuild's own writes. Meanwhile the reservations bound spend:
     CPM spend is reserved at the decision, so the spent counters lagging behind by the
     entries not yet applied costs no budget; the first drain after the epoch applies each
     entry once (`apply_once` records its id in the same step).
   So the bound on what a line item can spend or show beyond its budget or caps while its
   state is unknown is zero: a CPM line item spends within its rebuilt budget (reservations
   ≥ spend) and shows a viewer within the caps read for that viewer; a CPC one serves
   nothing until phase 2 is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone

from ads.decisioning.state import state_holder
from ads.delivery import keys
from ads.delivery.counters import Bump, Counters, DeliveryStateUnavailable, counters
from ads.models import CounterBacklog
from config.db import retried_on_lost_connection  # noqa: F401  (its users import it here)

logger = logging.getLogger(__name__)
DRAIN_AFTER = timedelta(seconds=2)  # an entry younger than this is its own request's to apply
DRAIN_BATCH = 500


def backlog_write(*, bumps: Sequence[Bump]) -> int | None:
    """Store the counter effects of events being stored, in the caller's transaction."""
    if not bumps:
        return None
    entry = CounterBacklog.objects.create(
        bumps=[[bump.key, bump.amount, bump.ttl] for bump in bumps]
    )
    return entry.pk


def backlog_apply(*, entry_id: int, bumps: Sequence[Bump], store: Counters | None = None) -> bool:
    """Apply a committed backlog entry and delete it: True when the counters have it now
    (applied by this call or before), False when they cannot take it yet (the entry stays for
    the drain). Where no refresher runs (a command, a worker, the tests), a store that lost its
    state is healed here first."""
    store = store or counters()
    try:
        store.apply_once(keys.applied(entry_id), bumps)
    except DeliveryStateUnavailable as error:
        if not heal_here(error):
            return False
        store.apply_once(keys.applied(entry_id), bumps)
    try:
        CounterBacklog.objects.filter(pk=entry_id).delete()
    except DatabaseError:  # applied: the drain deletes it later, without applying it again
        logger.warning("Backlog entry %s applied but not deleted.", entry_id, exc_info=True)
    return True


def counters_backlog_drain(*, store: Counters | None = None, at=None) -> int:
    """Apply the backlog entries older than DRAIN_AFTER, oldest first; returns how many the
    counters took. Stops at the first the store refuses (down, or not known)."""
    store = store or counters()
    before = (at or timezone.now()) - DRAIN_AFTER
    entries = CounterBacklog.objects.filter(created_at__lt=before).order_by("pk")[:DRAIN_BATCH]
    done = []
    try:
        for entry_id, raw in entries.values_list("pk", "bumps"):
            bumps = [Bump(key, amount, ttl) for key, amount, ttl in raw]
            store.apply_once(keys.applied(entry_id), bumps)
            done.append(entry_id)
    except DeliveryStateUnavailable:
        pass
    if done:
        CounterBacklog.objects.filter(pk__in=done).delete()
    return len(done)


def heal_here(error: DeliveryStateUnavailable) -> bool:
    """After `error`, heal the counters in this call when they lost their state and no
    refresher thread will (a command, a worker, the tests): True when they are known now."""
    if not error.lost or state_holder.background:
        return False
    return counters_heal()


def counters_heal(*, store: Counters | None = None) -> bool:
    """Rebuild the counters if they lost their state: True when they are known afterwards
    (already, or healed by this call); False while another process heals them or the store
    does not answer."""
    from ads.services.events import counters_rebuild

    store = store or counters()
    try:
        if store.state_known():
            return True
        counters_rebuild(store=store)
    except DeliveryStateUnavailable:
        return False
    except HealInProgress:
        return False
    return True


class HealInProgress(Exception):
    """Another process holds the healing key."""
