"""The live engagement score of open sessions, and the staff's live view of them.

`sessions_touched` is called wherever a session changes: when it starts or ends
(`engagement.services.viewing_session_start` / `_finish`) and after each stored batch of
playback events. It rescores the sessions (the live score champion on their events so far and
the engagement prior; the prior alone before there is a champion), stores the score with a
short history on the session, and sends the sessions' rows to the staff's Channels group,
whose sockets (`analytics.consumers.StaffSessionsConsumer`) forward them to the open pages.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from config.publish import Publisher
from engagement.learning.live_features import Playback, SessionState, feature_row, session_state
from engagement.learning.predict import engagement_predict
from engagement.models import PlaybackEvent, ViewingSession
from ml import selectors as ml_selectors
from ml.models import ModelKind

logger = logging.getLogger(__name__)

STAFF_SESSIONS_GROUP = "staff-sessions"
HISTORY_POINTS = 40  # the sparkline's points: the last scores of a session


def sessions_touched(*, session_ids: list[int], at: datetime | None = None) -> None:
    """Rescore these sessions at `at` (default: now) and tell the staff's open pages.

    1. Each session without one gets its engagement prior (the engagement champion for
       viewer × title, batched per viewer), kept on the session: it does not change while the
       session runs.
    2. Each open session is scored from its events up to `at` and its prior, in one call of the
       live score champion; the score and `at` are stored, and appended to its history (the
       last HISTORY_POINTS). An ended session keeps its last score.
    3. Their rows (`live_session_row`) go to the STAFF_SESSIONS_GROUP, in one message.

    Unknown ids are skipped. Scoring never raises to the caller: the events are stored
    already, and a failing model only leaves the scores as they were (logged)."""
    at = at or timezone.now()
    sessions = list(
        ViewingSession.objects.filter(pk__in=set(session_ids)).select_related("viewer", "title")
    )
    if not sessions:
        return
    events = session_events(session_ids=[session.pk for session in sessions])
    try:
        _score(sessions, events, at)
    except Exception:
        logger.exception("Live scores of sessions %s failed.", session_ids[:10])
    rows = [live_session_row(session, events[session.pk], at=at) for session in sessions]
    staff_publish(message={"type": "sessions.changed", "sessions": rows})


def session_events(*, session_ids: Iterable[int]) -> dict[int, list[Playback]]:
    """Each session's playback events, in time order (one query)."""
    found: dict[int, list[Playback]] = defaultdict(list)
    for session_id, kind, position, at, detail in (
        PlaybackEvent.objects.filter(session_id__in=list(session_ids))
        .order_by("session_id", "at", "id")
        .values_list("session_id", "kind", "position_seconds", "at", "detail")
    ):
        found[session_id].append(Playback(kind, position, at, detail))
    return found


def _score(sessions: list[ViewingSession], events: dict[int, list[Playback]], at: datetime):
    # Each session's prior as of its own start, as the live score's training scores it
    # (`engagement_priors`): the running history known then, not what ended since. A viewer's
    # sessions that started together are scored in one call.
    starting: dict[tuple[int, datetime], list[ViewingSession]] = defaultdict(list)
    for session in sessions:
        if session.engagement_prior is None:
            starting[(session.viewer_id, session.started_at)].append(session)
    for (_, started_at), together in starting.items():  # once per session: the prior is kept
        priors = engagement_predict(
            viewer=together[0].viewer, titles=[s.title for s in together], at=started_at
        )
        for session in together:
            session.engagement_prior = priors[session.title_id]
    open_sessions = [session for session in sessions if session.ended_at is None]
    scores = live_scores(
        [
            feature_row(
                events[session.pk],
                started_at=session.started_at,
                duration_seconds=session.title.duration_seconds,
                prior=session.engagement_prior or 0.5,
                at=at,
            )
            for session in open_sessions
        ],
        priors=[session.engagement_prior or 0.5 for session in open_sessions],
    )
    stamp = int(at.timestamp())
    for session, score in zip(open_sessions, scores, strict=True):
        session.engagement_score = round(float(score), 4)
        session.score_updated_at = at
        history = [point for point in session.score_history if point[0] < stamp]
        session.score_history = [*history, [stamp, session.engagement_score]][-HISTORY_POINTS:]
    ViewingSession.objects.bulk_update(
        sessions, ["engagement_prior", "engagement_score", "score_updated_at", "score_history"]
    )


def live_scores(rows: list[list[float]], *, priors: list[float]) -> np.ndarray:
    """The live score champion's probabilities for these feature rows; the priors as they
    are before there is a champion, or if it fails."""
    if not rows:
        return np.zeros(0)
    loaded = ml_selectors.champion(ModelKind.LIVE_ENGAGEMENT)
    if loaded is not None:
        try:
            return np.asarray(loaded.model.predict(np.array(rows, dtype=float)))
        except Exception:
            logger.exception("Live score model v%s failed; using the priors.", loaded.version)
    return np.array(priors, dtype=float)


def state_of(session: ViewingSession, state: SessionState) -> str:
    if session.completed:
        return "completed"
    if session.abandoned:
        return "abandoned"
    if session.ended_at is not None:
        return "ended"
    return {"starting": "starting", "paused": "paused", "ad": "ad break"}.get(
        state.state, "playing"
    )


def live_session_row(
    session: ViewingSession, events: list[Playback], *, at: datetime
) -> dict[str, Any]:
    """What the staff pages show of a session at `at` (JSON-ready): who watches what, where
    the player is and in which state, the score and its history."""
    duration = session.title.duration_seconds
    if session.ended_at is not None:
        state = session_state(events, duration_seconds=duration, at=session.ended_at)
        position = duration if session.completed else round(state.position)
    else:
        state = session_state(events, duration_seconds=duration, at=at)
        position = round(state.position)
    return {
        "id": session.pk,
        "viewer_id": session.viewer_id,
        "title_id": session.title_id,
        "viewer": session.viewer.external_id,
        "title": session.title.name,
        "device": session.device,
        "started_at": session.started_at.isoformat(),
        "position_seconds": position,
        "duration_seconds": duration,
        "state": state_of(session, state),
        "open": session.ended_at is None,
        "score": session.engagement_score,
        "prior": session.engagement_prior,
        "history": [point[1] for point in session.score_history],
    }


def staff_publish(*, message: dict[str, Any]) -> None:
    """Send `message` to the staff's open session pages (nothing without a channel layer)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None:
            # A sync view under ASGI (run by sync_to_async): async_to_sync uses the server's loop.
            async_to_sync(layer.group_send)(STAFF_SESSIONS_GROUP, message)
        else:
            _publisher.run(layer.group_send(STAFF_SESSIONS_GROUP, message))
    except Exception:  # the staff's view is not worth failing a viewer's request for
        logger.exception("Could not tell the staff's session pages.")


_publisher = Publisher("staff-publish", timeout=5)  # the staff's view waits at most 5 s
