"""Faults: counters that heal themselves, a backlog that keeps stored events' counter effects
until the counters take them (database work whose connection was lost is retried by
`config.db.retried_on_lost_connection`).

The protocol, which keeps every counter exact through a Redis restart (nothing lost, nothing
counted twice, no budget or cap spent again):

1. An event batch is stored with its counter effects (one `CounterBacklog` entry) in one
   transaction. After the commit the entry is applied (`backlog_apply`): the store adds the
   bumps and records how much of the entry it holds (`keys.applied`) in one step, then the
   entry is deleted. If the counters cannot be reached, the entry stays; the answer is still
   the truth (`accepted`).
2. Each server's refresher drains the backlog every second (`counters_backlog_drain`): entries
   the store already holds are only deleted, the others applied.
3. A store that lost its state (no epoch key) refuses reservations and applications until the
   first process to notice heals it (`counters_heal`, in a thread of its own: the process's
   refresher goes on draining): it claims the healing key (refused: another process heals)
   and rebuilds the counters from the event table in one snapshot of the database, in two
   phases (`counters_rebuild`). Phase 1 writes spend, reservations, click-through and live
   totals (from the event totals and their tail: about a second on a busy day) — every key
   but a viewer's (`keys.of_viewer`) —, marks the backlog entries of the snapshot as counted
   on those keys (`keys.applied` = APPLIED_BUDGETS) and sets `keys.budgets_known`; phase 2
   reads and writes the frequency caps and fatigue buckets (a viewer's keys: a minute or two
   on a busy day), deletes in the snapshot the backlog entries it read, commits and sets the
   epoch. Entries committed after the snapshot were not counted by the rebuild, and are
   applied as below.
4. The two parts of a backlog entry. Phase 1's keys are final once phase 1 is written: phase 2
   never writes them, and nothing but events and reservations moves them. So an entry's
   effects on them (its first part: spend, click-through, live totals) are applied from
   phase 1 on, its effects on a viewer's keys (the second: fatigue buckets, which phase 2
   sets) only after the epoch; `apply_once` checks which the state allows and what the marker
   says the counters hold, adds the rest and raises the marker in one atomic step (a Redis
   script, a SQLite transaction, the memory backend's lock). Each part is counted once:
   - an entry the snapshot holds was counted by the rebuild; its marker says its first part
     is held before anyone may apply one (the marks are written with phase 1, before
     `budgets_known`), and phase 2, which counted its second part, marks it whole
     (APPLIED_ALL) and deletes it before the epoch, so a request still holding the entry (it
     stored it before the snapshot and applies it only now, or healed the store itself)
     adds neither part again;
   - an entry committed after the snapshot is not in phase 1's values nor marked: its first
     part is applied once (by its own request, or the drain) once phase 1 is written — never
     before (a heal sets budgets known only after writing them, and takes it back as it
     starts), so a rebuilt value never overwrites it —, its second part once after the
     epoch, when phase 2's values are written;
   - the drain passes over the entries whose first part is held while the epoch is missing
     (their markers read in one round trip), so that the entries a whole phase 2 leaves in
     the backlog do not keep waiting ones behind them.
5. What may be reserved meanwhile, so that the rebuild's values are never overwritten and no
   budget or cap is passed:
   - before phase 1 is written: nothing (a decision is an empty pod, reason `degraded`);
   - between the phases: every line item. A CPM reservation adds to the rebuilt reservation
     (≥ the spend the table shows) within the budget, in the same atomic step as always. A
     CPC line item's budget is checked, as always, against its spend (clicks counted) by the
     state read: the spend rebuilt plus the first parts of the entries committed since (see
     4). A pod holding a viewer's cap keys is refused by the store until that viewer's caps
     are read (`keys.viewer_caps_known`, ViewerStateUnknown): the engine then reads them from
     the table (`ads.services.caps.viewer_caps_load`: one indexed query, the keys raised to
     the counts and the marker set in one step) and reserves again, so a capped line item
     serves each viewer within its caps from the first decision after phase 1. Phase 2 writes
     cap and fatigue keys: fatigue keys nothing moves between the phases (their part of the
     backlog waits), cap keys raised to their counts, never lowered (`raise_many`), so a
     reservation made meanwhile is kept (ads.services.caps says why that is exact). The CTR
     model's fatigue columns are features, not limits: a decision between the phases scores
     them unknown (NaN), as it does for a champion without them, never as zeros.
   So a CPM line item spends within its rebuilt budget (reservations ≥ spend) and shows a
   viewer within the caps read for that viewer: beyond them, zero. A CPC line item is never
   bounded tighter than this in normal operation: a click's spend arrives after the decision,
   so a slot is served while the spend counted (read at most a state refresh ago) leaves room
   for one more click, and the overspend normal operation accepts is at most the price of
   one click per slot served before the counted spend reached the budget whose click is
   counted after it (the event id holds one click per slot). The window adds none: between
   the phases the spend counted is what normal operation would count at the same moment —
   the table's as of the snapshot, plus each entry committed since, applied by its own
   request at its commit or, refused (stored before phase 1 was written, as one stored while
   Redis is out of reach in normal operation), by the next drain — and the rule serving a
   slot is the same. Before phase 1 nothing serves, so no slot of the window is served on a
   spend that was not counted.
6. Redis lost again during a heal: everything the heal wrote is gone with its claim, and
   another process's refresher may have claimed the store for a heal of its own within a
   second. A heal's claim holds a token of its own, and its steps that make the state known
   check that the claim still holds it in the same atomic step (`hold`: setting budgets
   known, and renewing the claim before each chunk and every 30 s from a thread while the
   heal runs, for 30 minutes at most; `mark_known(claim=token)`: the epoch; `release_heal`
   as it stops), so the heal stops at its next step (DeliveryStateUnavailable, `lost`)
   instead of declaring an empty store known or saying budgets known under another heal's
   claim, leaves the other heal's keys be, and that heal (or the next) starts over: the marks,
   phase 1's values and the first parts applied from the backlog are gone together, and its
   snapshot counts every stored event again (an entry is deleted only in the transaction of a
   snapshot that counted its events; those left are marked anew or applied as above). What a
   stopped heal wrote after the restart is overwritten or raised to by the next one (a later
   snapshot: never lower).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.utils import timezone

from ads.decisioning.state import state_holder
from ads.delivery import keys
from ads.delivery.counters import Bump, Counters, DeliveryStateUnavailable, counters
from ads.models import CounterBacklog
from config.db import retried_on_lost_connection  # noqa: F401  (its users import it here)

logger = logging.getLogger(__name__)
DRAIN_AFTER = timedelta(seconds=2)  # an entry younger than this is its own request's to apply
DRAIN_BATCH = 500
DRAIN_SCAN = 5000  # entry ids read at a time while passing over those partly applied


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
    (applied by this call or before), False when they cannot take it, or its part on the
    viewers' keys, yet (between a heal's phases: the entry stays for the drain). Where no
    refresher runs (a command, a worker, the tests), a store that lost its state is healed
    here first."""
    store = store or counters()
    try:
        whole = store.apply_once(keys.applied(entry_id), *_parts(bumps))
    except DeliveryStateUnavailable as error:
        if not heal_here(error):
            return False
        whole = store.apply_once(keys.applied(entry_id), *_parts(bumps))
    if not whole:
        return False
    try:
        _backlog_delete(entry_id)
    except DatabaseError:  # applied: the drain deletes it later, without applying it again
        logger.warning("Backlog entry %s applied but not deleted.", entry_id, exc_info=True)
    return True


def _backlog_delete(entry_id: int) -> None:
    """One DELETE statement, in autocommit: QuerySet.delete() wraps even a delete it makes in
    one statement in a transaction (BEGIN and COMMIT: two more round trips a batch, and about
    half a millisecond of the api process's CPU on top of the statement's)."""
    table = connection.ops.quote_name(CounterBacklog._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [entry_id])


def counters_backlog_drain(*, store: Counters | None = None, at=None) -> int:
    """Apply the backlog entries older than DRAIN_AFTER, oldest first, DRAIN_BATCH at most;
    returns how many the counters now hold whole (deleted). Stops at the first the store
    refuses (down, or not known). Between a heal's phases only an entry's first part is
    applied (it stays for its second), and the entries whose first part the counters hold
    are passed over (see the module docstring, 4)."""
    store = store or counters()
    before = (at or timezone.now()) - DRAIN_AFTER
    waiting = CounterBacklog.objects.filter(created_at__lt=before).order_by("pk")
    done = []
    try:
        offered = waiting.filter(pk__in=_to_offer(waiting, store))
        for entry_id, raw in offered.values_list("pk", "bumps"):
            bumps = [Bump(key, amount, ttl) for key, amount, ttl in raw]
            if store.apply_once(keys.applied(entry_id), *_parts(bumps)):
                done.append(entry_id)
    except DeliveryStateUnavailable:
        pass
    if done:
        CounterBacklog.objects.filter(pk__in=done).delete()
    return len(done)


def _to_offer(waiting: QuerySet[CounterBacklog], store: Counters) -> list[int]:
    """The first DRAIN_BATCH waiting entries the store may take more of: any, with the whole
    state known; none, without the budgets; between a heal's phases, those whose marker does
    not say their first part is held (read DRAIN_SCAN at a time)."""
    ids = list(waiting.values_list("pk", flat=True)[:DRAIN_BATCH])
    if not ids:
        return ids
    epoch, healing, budgets_known = store.get_many(
        [keys.epoch(), keys.healing(), keys.budgets_known()]
    )
    if epoch and not healing:
        return ids
    if not budgets_known:
        return []
    offer: list[int] = []
    after = 0
    while len(offer) < DRAIN_BATCH:
        ids = list(waiting.filter(pk__gt=after).values_list("pk", flat=True)[:DRAIN_SCAN])
        if not ids:
            break
        marks = store.get_many([keys.applied(entry_id) for entry_id in ids])
        offer += [entry_id for entry_id, mark in zip(ids, marks, strict=True) if not mark]
        after = ids[-1]
    return offer[:DRAIN_BATCH]


def _parts(bumps: Sequence[Bump]) -> tuple[list[Bump], list[Bump]]:
    """A backlog entry's bumps: on the keys a heal's first phase writes, and on a viewer's
    (its second phase's)."""
    first: list[Bump] = []
    viewers: list[Bump] = []
    for bump in bumps:
        (viewers if keys.of_viewer(bump.key) else first).append(bump)
    return first, viewers


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
    from ads.services.rebuild import counters_rebuild

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
