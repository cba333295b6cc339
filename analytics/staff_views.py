"""Staff pages: the executive dashboard (the platform now, its figures refreshed by htmx every
few seconds) and the monitoring page of each model kind (versions and their held-out metrics,
the champion's reliability table, its daily drift).

Staff only: anonymous users go to the login page; a signed-in user who is not staff gets a 404,
so the pages do not reveal that they exist. Every number comes from `analytics.selectors`; this
module only writes them as text, with "—" for a figure that is not defined yet.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from ads.selectors import LATENCY_BUCKETS_MS as BUCKETS_MS
from analytics import selectors
from analytics.reports import DASH, percent
from config import formats
from engagement import selectors as engagement_selectors
from engagement.models import ViewingSession
from ml import selectors as ml_selectors
from ml.models import ModelKind, ModelVersion

LATENCY_MINUTES = 5  # the window of `executive_summary`'s latency figures
PSI_BANDS = (
    ("none", "below 0.1: no shift"),
    ("moderate", "0.1 to 0.25: moderate shift"),
    ("significant", "above 0.25: significant shift"),
)


def staff_view(view):
    """Staff only; anonymous users log in first, anyone else gets a 404. When a polling htmx
    request finds the session gone, the whole page goes to the login form (not the tiles)."""
    view_for_users = login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if request.htmx:
                page = request.htmx.current_url_abs_path or reverse("staff_dashboard")
                return HttpResponseClientRedirect(redirect_to_login(page).url)
            return view_for_users(request, *args, **kwargs)
        if not request.user.is_staff:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


# How the figures are written


def fixed(value: float | None, places: int) -> str:
    return DASH if value is None else f"{value:.{places}f}"


def milliseconds(value: float | None) -> str:
    """A latency bucket's upper bound; the last bucket has none ("> 1000")."""
    if value is None:
        return DASH
    if value >= BUCKETS_MS[-1]:
        return f"> {BUCKETS_MS[-2]:g}"
    return f"≤ {value:g}"


def when(value: dt.datetime | None) -> str:
    return DASH if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M}"


def window_edge(value: dt.datetime | None) -> str:
    """A training window's edge: its day, with the time only when it is not midnight (UTC)."""
    if value is None:
        return "…"
    value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%d}" if value.time() == dt.time(0) else f"{value:%Y-%m-%d %H:%M}"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, …, 9 × a power of ten at or above `value` (a chart's axis limit)."""
    step = 10 ** math.floor(math.log10(value))
    return round(math.ceil(round(value / step, 9)) * step, 12)


@dataclass(frozen=True)
class Figure:
    """One tile of the executive dashboard, with a line saying what it counts."""

    key: str
    label: str
    value: str
    note: str
    unit: str = ""


@dataclass(frozen=True)
class FigureGroup:
    key: str
    title: str
    figures: list[Figure]


def executive_figures(summary: dict) -> list[FigureGroup]:
    viewing, delivery, latency = summary["viewing"], summary["delivery"], summary["latency"]
    return [
        FigureGroup(
            "viewing",
            "Viewing",
            [
                Figure(
                    "active_sessions",
                    "Active sessions",
                    formats.count(viewing["active_sessions"]),
                    "Viewing sessions open now (started in the last 4 hours, not ended).",
                ),
                Figure(
                    "average_live_score",
                    "Average live score",
                    percent(viewing["average_live_score"]),
                    "The open sessions' mean chance of finishing their title (live score).",
                ),
                Figure(
                    "sessions_today",
                    "Sessions today",
                    formats.count(viewing["sessions_today"]),
                    "Sessions started since midnight UTC.",
                ),
                Figure(
                    "completion_rate",
                    "Completion rate",
                    percent(viewing["completion_rate"]),
                    "Of today's sessions no longer open (ended, or left open for 4 hours), "
                    "the share that played their title to the end.",
                ),
                Figure(
                    "average_engagement",
                    "Average engagement",
                    percent(viewing["average_engagement"]),
                    "The share of its title a session of today watched, on average.",
                ),
            ],
        ),
        FigureGroup(
            "delivery",
            f"Delivery today ({delivery['day']:%Y-%m-%d}, UTC)",
            [
                Figure(
                    "impressions",
                    "Impressions",
                    formats.count(delivery["impressions"]),
                    "Ads shown, counted once each.",
                ),
                Figure("clicks", "Clicks", formats.count(delivery["clicks"]), "Clicks on ads."),
                Figure(
                    "completes",
                    "Completes",
                    formats.count(delivery["completes"]),
                    "Ads played to their end.",
                ),
                Figure(
                    "revenue",
                    "Revenue",
                    " · ".join(
                        formats.money(revenue, currency)
                        for currency, revenue in sorted(delivery["revenue"].items())
                    )
                    or formats.amount(0),
                    "Advertisers' spend in each of their currencies (not converted, not added).",
                ),
                Figure(
                    "fill_rate",
                    "Fill rate",
                    percent(delivery["fill_rate"]),
                    "Decisions that returned at least one ad (kids profiles not counted).",
                ),
            ],
        ),
        FigureGroup(
            "latency",
            f"Ad decisions, last {LATENCY_MINUTES} minutes",
            [
                Figure(
                    "decisions",
                    "Decisions",
                    formats.count(latency["decisions"]),
                    "Decisions timed by the API.",
                ),
                Figure(
                    "p50_ms",
                    "Latency p50",
                    milliseconds(latency["p50_ms"]),
                    "Half the decisions took at most this (a histogram bucket's bound).",
                    "ms",
                ),
                Figure(
                    "p99_ms",
                    "Latency p99",
                    milliseconds(latency["p99_ms"]),
                    "99 in 100 decisions took at most this.",
                    "ms",
                ),
            ],
        ),
    ]


def lift(table: list[dict] | None) -> str:
    """The top group's lift (its observed rate over the overall rate): how much better than
    random the model's most confident tenth is. Accuracy would say nothing at a 1 % click
    rate (always "no" is 99 % accurate)."""
    if not table:
        return DASH
    return f"{table[0]['lift']:.2f}×"


def lift_rows(table: list[dict]) -> list[dict]:
    return [
        {
            "group": row["group"],
            "count": formats.count(row["count"]),
            "predicted": fixed(row["predicted"], 4),
            "observed": fixed(row["observed"], 4),
            "lift": f"{row['lift']:.2f}×",
            "captured": percent(row["captured"]),
        }
        for row in table
    ]


def champion_rows(champions: dict[str, ModelVersion]) -> list[dict]:
    """Each model kind, with its champion's held-out figures (dashes when it has none)."""
    rows = []
    for kind, label in ModelKind.choices:
        champion = champions.get(kind)
        metrics = champion.metrics if champion else {}
        rows.append(
            {
                "kind": kind,
                "label": label,
                "champion": champion,
                "auc": fixed(metrics.get("auc"), 4),
                "log_loss": fixed(metrics.get("log_loss"), 4),
                "top_lift": lift(metrics.get("lift")),
                "calibration_ratio": fixed(metrics.get("calibration_ratio"), 3),
            }
        )
    return rows


def _executive_context() -> dict:
    summary = selectors.executive_summary(at=timezone.now())
    return {
        "at": summary["at"],
        "groups": executive_figures(summary),
        "champions": champion_rows(summary["champions"]),
        "refresh_seconds": settings.STAFF_DASHBOARD_REFRESH_SECONDS,
        "model_kinds": ModelKind.choices,
    }


@staff_view
def executive_dashboard(request: HttpRequest) -> HttpResponse:
    context = _executive_context()
    # Nightly figures: with the page, not with the polled tiles.
    context["worst_breaks"] = worst_break_rows(engagement_selectors.worst_breaks(limit=5))
    return render(request, "analytics/staff/executive.html", context)


def worst_break_rows(rows: list[dict]) -> list[dict]:
    return [
        row
        | {
            "at": clock(row["offset_seconds"]),
            "abandonment_text": percent(row["abandonment"]),
            "baseline_text": percent(row["baseline"]),
            "excess_text": percent(row["excess"]),
            "action_text": (
                f"move to {clock(row['to_offset_seconds'])}"
                if row["action"] == "move"
                else row["action"]
            ),
        }
        for row in rows
    ]


@staff_view
def executive_figures_partial(request: HttpRequest) -> HttpResponse:
    """The dashboard's figures alone: what its htmx polling swaps in."""
    return render(request, "analytics/staff/partials/figures.html", _executive_context())


# Model monitoring


def version_rows(versions: list[ModelVersion]) -> list[dict]:
    rows = []
    for version in versions:
        metrics = version.metrics
        rows.append(
            {
                "version": version,
                # Pieces that may not break inside (dates), so that the cell wraps between them.
                "window": (
                    [f"{window_edge(version.window_start)} –", window_edge(version.window_end)]
                    if version.window_start or version.window_end
                    else [DASH]
                ),
                "trained_at": when(version.trained_at).split(" "),
                "rows": [
                    formats.count(version.train_rows),
                    "/",
                    formats.count(version.holdout_rows),
                ],
                "auc": fixed(metrics.get("auc"), 4),
                "log_loss": fixed(metrics.get("log_loss"), 4),
                "normalized_entropy": fixed(metrics.get("normalized_entropy"), 4),
                "calibration_ratio": fixed(metrics.get("calibration_ratio"), 3),
                "ece": fixed(metrics.get("ece"), 4),
            }
        )
    return rows


def versions_chart(versions: list[ModelVersion]) -> dict:
    """AUC and log loss per version, oldest first (null where a version lacks one)."""
    return {
        "labels": [f"v{version.version}" for version in versions],
        "auc": [version.metrics.get("auc") for version in versions],
        "log_loss": [version.metrics.get("log_loss") for version in versions],
    }


def reliability_rows(reliability: list[dict]) -> list[dict]:
    return [
        {
            "bin": f"{row['low']:.2f}–{row['high']:.2f}",
            "count": formats.count(row["count"]),
            "predicted": fixed(row["predicted"], 4),
            "observed": fixed(row["observed"], 4),
            "gap": fixed(row["observed"] - row["predicted"], 4),
        }
        for row in reliability
    ]


def reliability_chart(reliability: list[dict]) -> dict:
    """Observed rate against mean prediction per bin, and the diagonal (perfect calibration)
    over the range the bins span, so that small probabilities (CTR) are not squeezed into a
    corner of the unit square."""
    # Left to right (the line joins them in order; tenths come highest prediction first).
    rows = sorted(reliability, key=lambda row: row["predicted"])
    points = [{"x": row["predicted"], "y": row["observed"]} for row in rows]
    top = max([max(point["x"], point["y"]) for point in points] or [1.0])
    top = min(1.0, nice_ceiling(top * 1.05)) if top > 0 else 1.0
    return {
        "points": points,
        "counts": [row["count"] for row in rows],
        "limit": top,
    }


def drift_rows(drift: list[dict]) -> list[dict]:
    return [
        {
            "day": f"{row['day']:%Y-%m-%d}",
            "rows": formats.count(row["rows"]),
            "psi": fixed(row["psi"], 4),
            "band": row["band"],
        }
        for row in drift
    ]


def prior_rows(metrics: dict) -> list[dict]:
    """The live score's held-out figures beside the prior alone's on the same rows (as served,
    and recalibrated to finishing), when the champion's metrics have them; else none."""
    if "prior_auc" not in metrics:
        return []
    return [
        {
            "name": name,
            "auc": fixed(metrics.get(f"{prefix}auc"), 4),
            "log_loss": fixed(metrics.get(f"{prefix}log_loss"), 4),
            "calibration_ratio": fixed(metrics.get(f"{prefix}calibration_ratio"), 3),
            "ece": fixed(metrics.get(f"{prefix}ece"), 4),
        }
        for name, prefix in (
            ("The model", ""),
            ("The prior alone, as served", "prior_"),
            ("The prior alone, recalibrated", "prior_recalibrated_"),
        )
    ]


@staff_view
def model_monitoring(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in ModelKind.values:
        raise Http404("No such model kind.")
    monitoring = selectors.model_monitoring(kind=kind)
    versions = monitoring["versions"]
    return render(
        request,
        "analytics/staff/models.html",
        {
            "kind": kind,
            "kind_label": ModelKind(kind).label,
            "model_kinds": ModelKind.choices,
            "versions": version_rows(list(reversed(versions))),  # newest first in the table
            # A chart of one or two points says less than the table under it.
            "versions_chart": versions_chart(versions) if len(versions) >= 3 else None,
            "champion": monitoring["champion"],
            "reliability": reliability_rows(monitoring["reliability"]),
            # Deciles when the champion has them: equal-width bins put a 1 % click rate's
            # predictions all in the first bin.
            "reliability_chart": reliability_chart(monitoring["lift"] or monitoring["reliability"]),
            "lift": lift_rows(monitoring["lift"]),
            "drift": drift_rows(monitoring["drift"]),
            "psi_bands": PSI_BANDS,
            "against_prior": prior_rows(monitoring["champion"].metrics)
            if monitoring["champion"]
            else [],
        },
    )


# Live sessions

SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 24


def clock(seconds: int | None) -> str:
    """A position in a title: 5025 → "1:23:45", 300 → "5:00"."""
    if seconds is None:
        return DASH
    hours, rest = divmod(int(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def sparkline_points(history: list[float]) -> str:
    """The SVG polyline of a score history on a 0–1 scale, oldest at the left (the same
    arithmetic as static/js/staff_sessions.js, which redraws it)."""
    if not history:
        return ""
    step = SPARKLINE_WIDTH / max(1, len(history) - 1)
    return " ".join(
        f"{index * step:.1f},{(1 - score) * SPARKLINE_HEIGHT:.1f}"
        for index, score in enumerate(history)
    )


def session_row(row: dict) -> dict:
    """A session's row (`engagement.live.live_session_row`) with its figures as text."""
    return row | {
        "started": when(dt.datetime.fromisoformat(row["started_at"])),
        "position": f"{clock(row['position_seconds'])} / {clock(row['duration_seconds'])}",
        "score_text": percent(row["score"]),
        "prior_text": percent(row["prior"]),
        "sparkline": sparkline_points(row["history"]),
    }


def _sessions_context() -> dict:
    return {
        "model_kinds": ModelKind.choices,
        "sparkline_width": SPARKLINE_WIDTH,
        "sparkline_height": SPARKLINE_HEIGHT,
    }


@staff_view
def live_sessions(request: HttpRequest) -> HttpResponse:
    """The sessions open now, newest first; the page follows the staff socket from there."""
    rows = [session_row(row) for row in selectors.staff_live_sessions(at=timezone.now())]
    champion = ml_selectors.champion_versions().get(ModelKind.LIVE_ENGAGEMENT)
    return render(
        request,
        "analytics/staff/sessions.html",
        _sessions_context() | {"sessions": rows, "live_champion": champion},
    )


def timeline_rows(timeline: list[dict]) -> list[dict]:
    rows = []
    for item in timeline:
        detail = item["detail"] or {}
        if item["source"] == "ad":
            what = f"Ad {item['kind'].replace('_', ' ')}"
            note = f"{detail['creative']} ({detail['advertiser']}), slot {detail['pod_position']}"
        else:
            what = item["kind"].replace("_", " ").capitalize()
            note = ", ".join(
                f"{name.replace('_', ' ')} {value}"
                for name, value in detail.items()
                if name != "decision_id"
            )
            if item["kind"] in ("seek", "skip") and "to" in detail:
                note = f"{clock(detail.get('from'))} → {clock(detail['to'])}"
        rows.append(
            {
                "at": item["at"],
                "source": item["source"],
                "what": what,
                "position": clock(item["position_seconds"]),
                "note": note,
            }
        )
    return rows


@staff_view
def live_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """One session: its row, kept current by the staff socket, and its timeline (playback
    events and the ad events of its pods) as of the page's load."""
    try:
        found = selectors.staff_session_timeline(session_id=session_id, at=timezone.now())
    except ViewingSession.DoesNotExist:
        raise Http404("No such session.") from None
    return render(
        request,
        "analytics/staff/session.html",
        _sessions_context()
        | {"session": session_row(found["session"]), "timeline": timeline_rows(found["timeline"])},
    )
