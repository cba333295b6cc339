"""Writes to what viewers watched and how they liked it."""

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.models import Device
from catalog.services import BATCH_SIZE, batched, rows_upsert
from engagement.live import sessions_touched
from engagement.models import PlaybackEvent, Rating, ViewingSession
from engagement.placement import break_placement_analyse as break_placement_analyse
from engagement.placement import break_placement_apply as break_placement_apply


@dataclass(frozen=True)
class RatingSpec:
    """A viewer's rating of a title, by database ids (a loader maps its own keys first)."""

    viewer_id: int
    title_id: int
    rating: int
    rated_at: datetime


def ratings_upsert(*, ratings: Iterable[RatingSpec], batch_size: int = BATCH_SIZE) -> int:
    """Create or update ratings keyed on (viewer, title): a second identical load leaves the
    same rows, a changed rating or timestamp overwrites the stored one.

    `ratings` is consumed lazily, `batch_size` at a time (a progress bar around it moves as
    batches are written); all of it is written in one transaction. Each rating must be 1 to 5
    with an aware `rated_at`, and a (viewer, title) pair may appear only once (PostgreSQL
    refuses to update one row twice in one statement). Returns the number of ratings written.
    """
    written = 0
    seen: set[tuple[int, int]] = set()
    with transaction.atomic():
        for batch in batched(ratings, batch_size):
            for spec in batch:
                _rating_spec_check(spec, seen)
            rows_upsert(
                Rating, batch, keys=["viewer_id", "title_id"], fields=["rating", "rated_at"]
            )
            written += len(batch)
    return written


def _rating_spec_check(spec: RatingSpec, seen: set[tuple[int, int]]) -> None:
    key = (spec.viewer_id, spec.title_id)
    if key in seen:
        raise ValidationError(f"Viewer {spec.viewer_id} rates title {spec.title_id} twice.")
    seen.add(key)
    if not 1 <= spec.rating <= 5:
        raise ValidationError({"rating": f"{spec.rating} is not between 1 and 5."})
    if spec.rated_at.tzinfo is None:
        raise ValidationError({"rated_at": "The time needs a time zone."})


@dataclass(frozen=True)
class PlaybackSpec:
    """One player event of a session."""

    kind: str
    position_seconds: int
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionSpec:
    """A viewing session and its player events, by database ids. A session still running has
    no `ended_at` and is neither completed nor abandoned."""

    viewer_id: int
    title_id: int
    device: str
    started_at: datetime
    ended_at: datetime | None
    watched_seconds: int
    completed: bool
    abandoned: bool
    events: Sequence[PlaybackSpec] = ()


def viewing_sessions_record(
    *, sessions: Iterable[SessionSpec], batch_size: int = BATCH_SIZE
) -> int:
    """Store sessions with their playback events, in one transaction; returns how many
    sessions were written.

    Every session is checked before anything is written (ValidationError naming the field):
    a known device, aware times, an end not before the start, not both completed and
    abandoned, events of a known kind at aware times and non-negative positions. Sessions are
    inserted `batch_size` at a time, then their events."""
    specs = list(sessions)
    for spec in specs:
        _session_spec_check(spec)
    with transaction.atomic():
        for batch in batched(specs, batch_size):
            rows = ViewingSession.objects.bulk_create(
                [
                    ViewingSession(
                        viewer_id=spec.viewer_id,
                        title_id=spec.title_id,
                        device=spec.device,
                        started_at=spec.started_at,
                        ended_at=spec.ended_at,
                        watched_seconds=spec.watched_seconds,
                        completed=spec.completed,
                        abandoned=spec.abandoned,
                    )
                    for spec in batch
                ]
            )
            events = [
                PlaybackEvent(
                    session_id=row.pk,
                    kind=event.kind,
                    position_seconds=event.position_seconds,
                    at=event.at,
                    detail=event.detail,
                )
                for row, spec in zip(rows, batch, strict=True)
                for event in spec.events
            ]
            PlaybackEvent.objects.bulk_create(events, batch_size=batch_size)
    return len(specs)


def viewing_session_start(
    *, viewer_id: int, title_id: int, device: str, started_at: datetime
) -> ViewingSession:
    """Store a session that has just started, open: no end, nothing watched yet, neither
    completed nor abandoned, no events. One INSERT; `viewing_session_finish` ends it.

    The device must be known and `started_at` aware (ValidationError naming the field,
    nothing written)."""
    _session_spec_check(
        SessionSpec(
            viewer_id=viewer_id,
            title_id=title_id,
            device=device,
            started_at=started_at,
            ended_at=None,
            watched_seconds=0,
            completed=False,
            abandoned=False,
        )
    )
    session = ViewingSession.objects.create(
        viewer_id=viewer_id,
        title_id=title_id,
        device=device,
        started_at=started_at,
        ended_at=None,
        watched_seconds=0,
        completed=False,
        abandoned=False,
    )
    _touched_on_commit(session.pk)
    return session


def viewing_session_finish(
    *,
    session: ViewingSession,
    ended_at: datetime,
    watched_seconds: int,
    completed: bool,
    abandoned: bool,
    events: Sequence[PlaybackSpec] = (),
) -> ViewingSession:
    """End an open session: store its end, the seconds watched, whether it was completed or
    abandoned, and its playback events, in one transaction; returns the session, updated.

    Refused with a ValidationError naming the field, and nothing changed, when the session
    has already ended (`ended_at`, also when another process ended it since `session` was
    read), when it would end before it started or without an aware end, or when the rest
    breaks the rules of `viewing_sessions_record`."""
    if ended_at is None:
        raise ValidationError({"ended_at": "A finished session needs its end."})
    if session.ended_at is not None:
        raise ValidationError({"ended_at": f"Session {session.pk} has already ended."})
    _session_spec_check(
        SessionSpec(
            viewer_id=session.viewer_id,
            title_id=session.title_id,
            device=session.device,
            started_at=session.started_at,
            ended_at=ended_at,
            watched_seconds=watched_seconds,
            completed=completed,
            abandoned=abandoned,
            events=events,
        )
    )
    fields = {
        "ended_at": ended_at,
        "watched_seconds": watched_seconds,
        "completed": completed,
        "abandoned": abandoned,
    }
    with transaction.atomic():
        updated = ViewingSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
            **fields
        )
        if not updated:  # ended elsewhere since it was read, or gone
            raise ValidationError({"ended_at": f"Session {session.pk} has already ended."})
        PlaybackEvent.objects.bulk_create(
            [
                PlaybackEvent(
                    session_id=session.pk,
                    kind=event.kind,
                    position_seconds=event.position_seconds,
                    at=event.at,
                    detail=event.detail,
                )
                for event in events
            ],
            batch_size=BATCH_SIZE,
        )
    for name, value in fields.items():
        setattr(session, name, value)
    _touched_on_commit(session.pk)
    return session


def _touched_on_commit(session_id: int) -> None:
    """Score the session and tell the staff once the change is committed (never a session
    that was rolled back)."""
    transaction.on_commit(lambda: sessions_touched(session_ids=[session_id]))


DEVICES = frozenset(Device.values)
PLAYBACK_KINDS = frozenset(PlaybackEvent.Kind.values)


def _session_spec_check(spec: SessionSpec) -> None:
    if spec.device not in DEVICES:
        raise ValidationError({"device": f"Unknown device {spec.device!r}."})
    if spec.started_at.tzinfo is None or (spec.ended_at and spec.ended_at.tzinfo is None):
        raise ValidationError({"started_at": "Session times need a time zone."})
    if spec.ended_at is not None and spec.ended_at < spec.started_at:
        raise ValidationError({"ended_at": "The session cannot end before it starts."})
    if spec.completed and spec.abandoned:
        raise ValidationError({"abandoned": "A session is completed or abandoned, not both."})
    if spec.watched_seconds < 0:
        raise ValidationError({"watched_seconds": "Cannot be negative."})
    for event in spec.events:
        if event.kind not in PLAYBACK_KINDS:
            raise ValidationError({"kind": f"Unknown playback event {event.kind!r}."})
        if event.at.tzinfo is None:
            raise ValidationError({"at": "Playback event times need a time zone."})
        if event.position_seconds < 0:
            raise ValidationError({"position_seconds": "Cannot be negative."})


# --- The viewer app (/watch/): a player's batches of playback events ---------------------------

# Playback events that end a session, and how: `complete` played to the end, `abandon` left.
ENDING_KINDS = {PlaybackEvent.Kind.COMPLETE: "completed", PlaybackEvent.Kind.ABANDON: "abandoned"}


@dataclass(frozen=True)
class PlayerEvent:
    """One event as a player reports it: its own id (the key of idempotency), what happened,
    where in the title, when (already placed on the server's clock) and the kind's details."""

    event_id: str
    kind: str
    position_seconds: int
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AppendOutcome:
    stored: int  # new events written
    duplicates: int  # events whose id the session already had (or twice in the batch)
    ended: bool  # the session has ended (by this batch or before it)


def playback_events_append(
    *,
    session: ViewingSession,
    events: Sequence[PlayerEvent],
    watched_seconds: int | None = None,
) -> AppendOutcome:
    """Store a player's batch of events for its open session, each once per `event_id`.

    1. Events whose id the session already holds, or seen earlier in the batch, are left out
       and counted as duplicates: a batch sent twice (a retried fetch, the tab's closing
       beacon after a fetch) stores nothing the second time.
    2. Every new event is checked (ValidationError naming the field, nothing written): a known
       kind, a non-negative position not past the title's end, an aware time not before the
       session started.
    3. New events for a session that has already ended are refused (`session`); a batch made
       only of duplicates is answered as such, ended or not.
    4. The new events are inserted (a concurrent copy of the same batch loses on the unique
       (session, client_event_id) constraint and inserts nothing); `watched_seconds`, when
       given, raises the session's figure (never lowers it; at most the title's duration); a
       `complete` or `abandon` among them ends the session at that event, completed or
       abandoned, as `viewing_session_finish` would.
    5. Once committed, the session is rescored live (`engagement.live.sessions_touched`).
    """
    ids = [event.event_id for event in events]
    known = set(
        PlaybackEvent.objects.filter(session=session, client_event_id__in=ids).values_list(
            "client_event_id", flat=True
        )
    )
    new_events: list[PlayerEvent] = []
    for event in events:
        if event.event_id not in known:
            known.add(event.event_id)
            new_events.append(event)
    duplicates = len(events) - len(new_events)
    if not new_events:
        return AppendOutcome(stored=0, duplicates=duplicates, ended=session.ended_at is not None)
    if session.ended_at is not None:
        raise ValidationError({"session": f"Session {session.pk} has already ended."})
    duration = session.title.duration_seconds
    for event in new_events:
        _player_event_check(event, session=session, duration=duration)
    if watched_seconds is not None and watched_seconds < 0:
        raise ValidationError({"watched_seconds": "Cannot be negative."})
    ending = next((event for event in new_events if event.kind in ENDING_KINDS), None)
    fields: dict[str, Any] = {}
    if watched_seconds is not None and watched_seconds > session.watched_seconds:
        fields["watched_seconds"] = min(watched_seconds, duration)
    if ending is not None:
        fields |= {
            "ended_at": max(ending.at, session.started_at),
            "completed": ending.kind == PlaybackEvent.Kind.COMPLETE,
            "abandoned": ending.kind == PlaybackEvent.Kind.ABANDON,
        }
    with transaction.atomic():
        if fields:
            updated = ViewingSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
                **fields
            )
            if not updated:  # ended by another request since it was read
                raise ValidationError({"session": f"Session {session.pk} has already ended."})
        PlaybackEvent.objects.bulk_create(
            [
                PlaybackEvent(
                    session_id=session.pk,
                    client_event_id=event.event_id,
                    kind=event.kind,
                    position_seconds=event.position_seconds,
                    at=event.at,
                    detail=event.detail,
                )
                for event in new_events
            ],
            ignore_conflicts=True,
        )
        _touched_on_commit(session.pk)  # the live score (engagement.live.sessions_touched)
    for name, value in fields.items():
        setattr(session, name, value)
    return AppendOutcome(
        stored=len(new_events), duplicates=duplicates, ended=session.ended_at is not None
    )


def _player_event_check(event: PlayerEvent, *, session: ViewingSession, duration: int) -> None:
    if event.kind not in PLAYBACK_KINDS:
        raise ValidationError({"kind": f"Unknown playback event {event.kind!r}."})
    if not 0 <= event.position_seconds <= duration:
        raise ValidationError(
            {"position_seconds": f"{event.position_seconds} is not within 0–{duration} s."}
        )
    if event.at.tzinfo is None:
        raise ValidationError({"at": "Playback event times need a time zone."})
    if event.at < session.started_at:
        raise ValidationError({"at": "The event cannot happen before the session started."})


# The engagement model's training and serving live in engagement.learning; these are the
# names other apps and the tasks may use. The trainers are imported on first use (PEP 562):
# they import LightGBM and scikit-learn, which a process serving requests never needs.
if TYPE_CHECKING:
    from engagement.learning.live_training import live_score_model_train  # noqa: F401
    from engagement.learning.predict import engagement_predict  # noqa: F401
    from engagement.learning.training import engagement_model_train  # noqa: F401

_LEARNING = {
    "engagement_model_train": "engagement.learning.training",
    "engagement_predict": "engagement.learning.predict",
    "live_score_model_train": "engagement.learning.live_training",
}


def __getattr__(name: str) -> Any:
    if name not in _LEARNING:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LEARNING[name]), name)


from engagement.live import STAFF_SESSIONS_GROUP  # noqa: E402, F401
