"""CTR features: one encoding shared by training (rows from the event table) and serving
(a decision's context and its candidate creatives), so the two can never drift apart.

A row is an impression. Its features, all known at decision time:

* viewer: age band, gender (the profile);
* request: device and region (the decision's, which may differ from the profile's);
* title: maturity, year, genres (one column per genre);
* creative: category, duration, advertiser, and the creative itself (new ones are unknown);
* context: position in the pod (ranking scores a candidate at the slot it would fill), break
  offset and whether it is a pre-roll;
* fatigue (`FATIGUE`, off by default: `FATIGUE_BY_DEFAULT` says why): the viewer's ad
  impressions in the last hour and the last three hours, and the minutes since their last ad,
  all counted before the decision (`fatigue_columns` from the event table,
  `fatigue_from_buckets` from the delivery counters at serving);
* the viewer's own clock: hour, daypart and weekend in the time zone of the request's region
  (people click by their own clock, not by the advertiser's);
* history, when asked for (`HISTORY`, off by default: it measured no gain): smoothed
  click-through (as a lift over the window's rate) and impression count (log) of the viewer,
  the creative, its line item and its advertiser (`History`).

Categorical values become integer codes from vocabularies fitted on the training rows;
an unseen value is NaN, which the gradient-boosted trees handle and the one-hot baseline
ignores.

History never includes the row's own click: a training row sees the counts of the other
time blocks of the window (out of fold, `history_columns`); held-out rows and decisions see the
totals of the whole training window, frozen in the model artifact (`History.lookup`), which is
what a model retrained nightly knows the next day.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ads.models import daypart_at
from catalog.models import REGION_TIMEZONES

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported where the training columns are made, not at the top: every process that
# loads the URLs reaches this module (ads.services → the decision engine's scoring → ServingRows,
# which uses none of it), and importing pandas costs ~0.9 s of CPU at each start-up.

CATEGORICAL = [
    "age_band",
    "gender",
    "region",
    "device",
    "maturity",
    "category",
    "advertiser",
    "creative",
    "viewer_daypart",
]
NUMERIC = [
    "year",
    "duration",
    "position",
    "break_minutes",
    "is_preroll",
    "viewer_hour",
    "viewer_weekend",
]
# Fatigue: the viewer's impressions counted in ten-minute buckets of Unix time (the delivery
# counters keep one counter per viewer and bucket, ads.delivery.keys.viewer_ads). "The last
# hour" is the decision's bucket and the 5 before it (50 to 60 minutes), "the last three
# hours" the bucket and the 17 before it; the minutes since the last ad are measured from the
# start of the latest bucket holding one, at most FATIGUE_MINUTES (none in three hours).
# Training counts the same buckets from the event table, so the two are equal by definition.
FATIGUE = ["ads_last_hour", "ads_last_3h", "minutes_since_ad"]
FATIGUE_BUCKET_SECONDS = 600
FATIGUE_HOUR_BUCKETS = 6
FATIGUE_BUCKETS = 18
FATIGUE_MINUTES = FATIGUE_BUCKETS * FATIGUE_BUCKET_SECONDS / 60
# Whether a model uses the FATIGUE columns by default: no. Measured with bench/ctr_oracle.py on
# one saved world (14 days, 3,000 viewers; README), the simulator's truth gives fatigue little
# to find: the oracle without its fatigue term loses about 0.002 of expected AUC (−0.04 of
# logit per ad the session played, and most impressions come after 0 to 3 of them), and
# LightGBM with the columns did not beat LightGBM without them. A champion without them costs
# no counter read per decision. The columns stay, computed in training, for the bench and for
# a world (or real traffic) where fatigue is worth more.
FATIGUE_BY_DEFAULT = False
HISTORY_KEYS = ("viewer", "creative", "line_item", "advertiser")
HISTORY_CHOICES = [f"{key}_{stat}" for key in HISTORY_KEYS for stat in ("lift", "impressions")]
# The history columns a model uses by default: none. Measured with bench/ctr_oracle.py
# --history (14 days, 398k training rows), the combinations tried (viewer lift; viewer lift
# and count; the four lifts; all eight) moved the held-out expected AUC by at most +0.001 and
# the log loss by less than 0.1 %, and the eight columns worsened calibration (1.037 against
# 1.013): in a 14-day window a viewer has a few dozen impressions and under one click, far too
# few to tell their own propensity from the prior (that takes several hundred), and creatives
# and advertisers are already categorical features. The columns stay for longer histories.
HISTORY: list[str] = []

# The viewer's clock: the time zone of the request's region (UTC for one it does not know).
_ZONES = {str(region): zoneinfo.ZoneInfo(name) for region, name in REGION_TIMEZONES.items()}
_UTC = zoneinfo.ZoneInfo("UTC")
# Artifacts of an older feature layout cannot score today's rows: serving skips them (the
# engine's Beta posteriors stand in) and training does not compare against them.
FORMAT_VERSION = 3  # 3: fatigue columns
# Beta prior strengths (in impressions) are estimated per key from the window (empirical
# Bayes); these bound them where a key has too little data to tell.
MIN_STRENGTH, MAX_STRENGTH = 20.0, 100_000.0


def viewer_clock(region: str, at: dt.datetime) -> tuple[str, float, float]:
    """(daypart, hour, weekend 0/1) on the clock of the request's region (the targeting's
    parts of the day)."""
    local = at.astimezone(_ZONES.get(region, _UTC))
    return str(daypart_at(local)), float(local.hour), float(local.weekday() >= 5)


def viewer_clocks(regions: Iterable[str], times: Iterable[dt.datetime]) -> list[tuple]:
    """`viewer_clock` of each (region, time), worked out once per region and quarter hour of
    Unix time: every time zone's offset, and each of its changes, falls on a quarter hour, so
    the local hour, weekday and daypart hold through each. A training window's impressions
    share a few hundred of these, so this skips nearly every time zone conversion."""
    known: dict[tuple[str, int], tuple[str, float, float]] = {}
    clocks = []
    for region, at in zip(regions, times, strict=True):
        key = (region, int(at.timestamp() // 900))
        if (clock := known.get(key)) is None:
            clock = known[key] = viewer_clock(region, at)
        clocks.append(clock)
    return clocks


def fatigue_bucket(at: dt.datetime) -> int:
    """The ten-minute bucket of Unix time holding `at`."""
    return int(at.timestamp() // FATIGUE_BUCKET_SECONDS)


def fatigue_from_buckets(counts, at: dt.datetime) -> tuple[float, float, float]:
    """(ads in the last hour, in the last three hours, minutes since the last ad) at `at` from
    the viewer's impression counts per bucket, `counts[k]` the bucket k before `at`'s
    (k = 0 … FATIGUE_BUCKETS − 1): what serving reads from the delivery counters."""
    counts = [int(count) for count in counts]
    hour, hours = sum(counts[:FATIGUE_HOUR_BUCKETS]), sum(counts[:FATIGUE_BUCKETS])
    latest = next((k for k, count in enumerate(counts[:FATIGUE_BUCKETS]) if count > 0), None)
    if latest is None:
        return float(hour), float(hours), FATIGUE_MINUTES
    start = (fatigue_bucket(at) - latest) * FATIGUE_BUCKET_SECONDS
    return float(hour), float(hours), min((at.timestamp() - start) / 60, FATIGUE_MINUTES)


def fatigue_columns(frame: pd.DataFrame, impressions: pd.DataFrame) -> dict[str, np.ndarray]:
    """The fatigue columns of each training row, from `impressions` (viewer_id, occurred_at:
    every impression from FATIGUE_BUCKETS buckets before the frame's first row on). A row's
    time is its decision's: the first impression of the pod, as the counters are read once
    per decision before the pod plays. Only impressions strictly before that time count: the
    pod's own and any later one never do (no leakage; the pod's earlier slots are the
    position column's business)."""
    import pandas as pd

    decision_at = frame.groupby("decision_id")["occurred_at"].transform("min")
    at_seconds = _seconds(decision_at)
    viewers = frame["viewer_id"].to_numpy(dtype=np.int64)
    times = _seconds(impressions["occurred_at"])
    codes, known = pd.factorize(
        np.concatenate([impressions["viewer_id"].to_numpy(dtype=np.int64), viewers])
    )
    event_codes, row_codes = codes[: len(times)], codes[len(times) :]
    # One sorted key per impression: viewer code, then microseconds since the earliest time.
    origin = min(times.min() if len(times) else 0, at_seconds.min())
    scale = 2**42

    def key(code, seconds):
        return code.astype(np.int64) * scale + np.round((seconds - origin) * 1e6).astype(np.int64)

    order = np.sort(key(event_codes, times))
    bucket = np.floor(at_seconds / FATIGUE_BUCKET_SECONDS)
    before = np.searchsorted(order, key(row_codes, at_seconds), side="left")
    hour_from = (bucket - (FATIGUE_HOUR_BUCKETS - 1)) * FATIGUE_BUCKET_SECONDS
    hours_from = (bucket - (FATIGUE_BUCKETS - 1)) * FATIGUE_BUCKET_SECONDS
    in_hour = before - np.searchsorted(order, key(row_codes, hour_from), side="left")
    in_hours = before - np.searchsorted(order, key(row_codes, hours_from), side="left")
    latest = (order[np.maximum(before - 1, 0)] % scale) / 1e6 + origin
    latest_start = np.floor(latest / FATIGUE_BUCKET_SECONDS) * FATIGUE_BUCKET_SECONDS
    minutes = np.where(
        in_hours > 0,
        np.minimum((at_seconds - latest_start) / 60, FATIGUE_MINUTES),
        FATIGUE_MINUTES,
    )
    return {
        "ads_last_hour": in_hour.astype(float),
        "ads_last_3h": in_hours.astype(float),
        "minutes_since_ad": minutes,
    }


def _seconds(times) -> np.ndarray:
    """Unix seconds (float) of a column of aware datetimes."""
    import pandas as pd

    values = pd.to_datetime(pd.Series(times), utc=True)
    return (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


def beta_strength(impressions: np.ndarray, clicks: np.ndarray, prior: float) -> float:
    """How many impressions the window's rate is worth as a prior for one key's own rate:
    p(1 − p) / (between-key variance) − 1, the variance by the method of moments (observed
    spread of the rates less what binomial noise alone explains)."""
    used = impressions > 0
    n, c = impressions[used].astype(float), clicks[used].astype(float)
    total = n.sum()
    if len(n) < 2 or total <= 0:
        return MAX_STRENGTH
    spread = float((n * (c / n - prior) ** 2).sum())
    between = (spread - (len(n) - 1) * prior * (1 - prior)) / (total - (n**2).sum() / total)
    if between <= 0:
        return MAX_STRENGTH
    return float(np.clip(prior * (1 - prior) / between - 1, MIN_STRENGTH, MAX_STRENGTH))


@dataclass
class History:
    """Per viewer, creative, line item and advertiser: impressions and clicks in the training
    window (sorted id, impressions and clicks arrays per key: 20 bytes a key, looked up by
    binary search), with the window's rate and each key's prior strength."""

    prior: float = 0.01
    strength: dict[str, float] = field(default_factory=dict)
    totals: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, keys=HISTORY_KEYS) -> History:
        labels = frame["label"].to_numpy()
        prior = float(labels.mean()) if len(labels) else 0.01
        prior = min(max(prior, 1e-4), 0.5)
        history = cls(prior=prior)
        for key in keys:
            grouped = frame.groupby(frame[_ID[key]].to_numpy())["label"].agg(["size", "sum"])
            ids = grouped.index.to_numpy(dtype=np.int64)
            impressions = grouped["size"].to_numpy(dtype=np.int32)
            clicks = grouped["sum"].to_numpy(dtype=np.int32)
            history.strength[key] = beta_strength(impressions, clicks, prior)
            history.totals[key] = (ids, impressions, clicks)  # the index is sorted
        return history

    def values(self, key: str, impressions, clicks) -> tuple[np.ndarray, np.ndarray]:
        """(lift, log(1 + impressions)) from counts: the Beta-smoothed rate over the prior."""
        strength = self.strength.get(key, MAX_STRENGTH)
        n = np.asarray(impressions, dtype=float)
        c = np.asarray(clicks, dtype=float)
        lift = (c + strength * self.prior) / (n + strength) / self.prior
        return lift, np.log1p(n)

    def counts(self, key: str, ids) -> tuple[np.ndarray, np.ndarray]:
        """The window's (impressions, clicks) of `ids` (an unknown id has none)."""
        wanted = np.asarray(ids, dtype=np.int64)
        known, impressions, clicks = self.totals.get(key, (np.empty(0, np.int64),) * 3)
        if not len(known):
            return np.zeros(len(wanted)), np.zeros(len(wanted))
        at = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
        found = known[at] == wanted
        return np.where(found, impressions[at], 0), np.where(found, clicks[at], 0)

    def lookup(self, key: str, ids) -> tuple[np.ndarray, np.ndarray]:
        """(lift, log(1 + impressions)) of `ids` from the window's totals."""
        return self.values(key, *self.counts(key, ids))


# The frame's column holding each history key's id.
_ID = {
    "viewer": "viewer_id",
    "creative": "creative",
    "line_item": "line_item",
    "advertiser": "advertiser",
}


HISTORY_BLOCKS = 4


def history_columns(
    frame: pd.DataFrame, history: History, keys=HISTORY_KEYS
) -> dict[str, np.ndarray]:
    """Out-of-fold history of each training row: the rows in HISTORY_BLOCKS consecutive
    blocks by time, and each row's counts those of the other blocks (never its own click).

    Not "only the rows before it": counts that grow through the window are a clock the trees
    would learn, and the next day every key would show the window's totals, later than any
    training row's. Out of fold, training rows see totals of about the same size as serving.
    """
    import pandas as pd

    block = np.zeros(len(frame), dtype=int)
    for number, rows in enumerate(np.array_split(np.arange(len(frame)), HISTORY_BLOCKS)):
        block[rows] = number
    labels = frame["label"].to_numpy()
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        codes, _ = pd.factorize(frame[_ID[key]].to_numpy())
        impressions = np.zeros((codes.max() + 1, HISTORY_BLOCKS))
        clicks = np.zeros_like(impressions)
        np.add.at(impressions, (codes, block), 1)
        np.add.at(clicks, (codes, block), labels)
        other_impressions = impressions.sum(axis=1)[codes] - impressions[codes, block]
        other_clicks = clicks.sum(axis=1)[codes] - clicks[codes, block]
        # The other blocks hold (B − 1)/B of the window; serving sees all of it.
        scale = HISTORY_BLOCKS / (HISTORY_BLOCKS - 1)
        lift, count = history.values(key, other_impressions * scale, other_clicks * scale)
        columns[f"{key}_lift"], columns[f"{key}_impressions"] = lift, count
    return columns


def _key_of(column: str) -> str:
    return column.rsplit("_", 1)[0]


@dataclass
class CtrFeatures:
    """Fitted vocabularies and history; `matrix` turns a frame of raw columns into model
    input, `serving_matrix` a decision's context and candidates."""

    vocabularies: dict[str, dict] = field(default_factory=dict)
    genres: list[str] = field(default_factory=list)
    history: History = field(default_factory=History)
    history_columns: list[str] = field(default_factory=lambda: list(HISTORY))
    # Whether the model sees the FATIGUE columns (FATIGUE_BY_DEFAULT; bench/ctr_oracle.py
    # measures what they are worth); an artifact pickled before they existed has none.
    fatigue: bool = FATIGUE_BY_DEFAULT

    def __post_init__(self) -> None:
        unknown = set(self.history_columns) - set(HISTORY_CHOICES)
        if unknown:
            raise ValueError(f"Unknown history columns: {sorted(unknown)}.")

    @property
    def numeric(self) -> list[str]:
        return [*NUMERIC, *(FATIGUE if self.fatigue else [])]

    @property
    def columns(self) -> list[str]:
        return [
            *CATEGORICAL,
            *self.numeric,
            *self.history_columns,
            *(f"genre_{slug}" for slug in self.genres),
        ]

    def fit(self, frame: pd.DataFrame) -> CtrFeatures:
        self.vocabularies = {
            name: {value: code for code, value in enumerate(sorted(frame[name].dropna().unique()))}
            for name in CATEGORICAL
        }
        self.genres = sorted({slug for slugs in frame["genres"] for slug in slugs})
        self.history = History.fit(frame, self.history_keys)
        return self

    @property
    def history_keys(self) -> list[str]:
        return sorted({_key_of(name) for name in self.history_columns})

    def matrix(self, frame: pd.DataFrame, *, training: bool = False) -> np.ndarray:
        """Model input for `frame`'s rows: with `training`, each row's history is out of fold
        (the frame must be oldest first); otherwise the window's frozen totals."""
        if not len(frame):
            return np.empty((0, len(self.columns)))
        parts = [
            frame[name].map(self.vocabularies[name]).to_numpy(dtype=float) for name in CATEGORICAL
        ]
        parts += [frame[name].to_numpy(dtype=float) for name in self.numeric]
        if training:
            history = history_columns(frame, self.history, self.history_keys)
        else:
            history = {}
            for key in self.history_keys:
                lift, count = self.history.lookup(key, frame[_ID[key]].to_numpy())
                history[f"{key}_lift"], history[f"{key}_impressions"] = lift, count
        parts += [history[name] for name in self.history_columns]
        genre_sets = frame["genres"].tolist()
        parts += [
            np.fromiter((slug in genres for genres in genre_sets), dtype=float, count=len(frame))
            for slug in self.genres
        ]
        return np.column_stack(parts)


def _code(vocabulary: dict, value) -> float:
    code = vocabulary.get(value)
    return float("nan") if code is None else float(code)


# Columns that vary per creative within one decision (with the creative's, line item's and
# advertiser's history); none depends on the time, so each creative's are computed once per
# model and reused by every decision.
CREATIVE_COLUMNS = ("category", "advertiser", "creative", "duration")
CREATIVE_KEYS = ("creative", "line_item", "advertiser")


class ServingRows:
    """Builds a decision's rows with numpy alone: the context's row once, tiled, and each
    creative's columns from a table filled the first time the creative is seen."""

    def __init__(self, features: CtrFeatures) -> None:
        self.features = features
        columns = features.columns
        self.width = len(columns)
        self.creative_history = [
            name for name in features.history_columns if _key_of(name) in CREATIVE_KEYS
        ]
        names = [*CREATIVE_COLUMNS, *self.creative_history]
        self.creative_columns = np.array([columns.index(name) for name in names])
        # (creative entry → row of the table, the table): one attribute, swapped whole, so a
        # thread never pairs one version's rows with another's table.
        self.cache: tuple[dict[Any, int], np.ndarray] = ({}, np.empty((0, len(names))))
        self.index = {name: position for position, name in enumerate(columns)}
        self.context_categorical = [name for name in CATEGORICAL if name not in CREATIVE_COLUMNS]
        self.viewer_history = [
            name for name in features.history_columns if _key_of(name) == "viewer"
        ]
        self.genre_offset = len(CATEGORICAL) + len(features.numeric) + len(features.history_columns)
        self.fatigue = features.fatigue
        self.position_column = self.index["position"]

    def _creative_values(self, creative) -> list[float]:
        features, history = self.features, self.features.history
        values = [
            _code(features.vocabularies["category"], creative.category),
            _code(features.vocabularies["advertiser"], creative.advertiser_id),
            _code(features.vocabularies["creative"], creative.id),
            float(creative.duration_seconds),
        ]
        ids = {
            "creative": creative.id,
            "line_item": creative.line_item_id,
            "advertiser": creative.advertiser_id,
        }
        for name in self.creative_history:
            key = _key_of(name)
            lift, count = history.lookup(key, [ids[key]])
            values.append(float(lift[0] if name.endswith("_lift") else count[0]))
        return values

    def creative_block(self, creatives) -> np.ndarray:
        """The creatives' own columns, one row each, from the cache (filled on first sight).
        Keyed by the index entry itself (frozen, hashed by value), so a creative whose category
        or duration is edited gets fresh columns once the index is rebuilt."""
        slot, table = self.cache
        missing = {creative: None for creative in creatives if creative not in slot}
        if missing:
            added = np.array([self._creative_values(creative) for creative in missing])
            slot = {**slot, **{entry: len(table) + n for n, entry in enumerate(missing)}}
            table = np.vstack([table, added])
            self.cache = (slot, table)
        return table[[slot[creative] for creative in creatives]]

    def context_row(
        self, context: dict, viewer_id: int, at: dt.datetime, position: int, fatigue=None
    ):
        """The columns every candidate shares: viewer, request, title, clock, position and
        `fatigue` (`fatigue_from_buckets`'s three values; NaN when not given)."""
        features, at_index = self.features, self.index
        base = np.full(self.width, np.nan)
        daypart, hour, weekend = viewer_clock(context["region"], at)
        values = {**context, "viewer_daypart": daypart}
        for name in self.context_categorical:
            code = features.vocabularies[name].get(values[name])
            if code is not None:
                base[at_index[name]] = code
        numeric = {
            "year": context["year"],
            "position": position,
            "break_minutes": context["break_minutes"],
            "is_preroll": context["is_preroll"],
            "viewer_hour": hour,
            "viewer_weekend": weekend,
        }
        if self.fatigue and fatigue is not None:
            numeric |= dict(zip(FATIGUE, fatigue, strict=True))
        for name, value in numeric.items():
            if value is not None:
                base[at_index[name]] = value
        if self.viewer_history:
            lift, count = features.history.lookup("viewer", [viewer_id])
            for name in self.viewer_history:
                base[at_index[name]] = lift[0] if name.endswith("_lift") else count[0]
        genres = context["genres"]
        base[self.genre_offset : self.genre_offset + len(features.genres)] = [
            slug in genres for slug in features.genres
        ]
        return base

    def matrix(
        self,
        context: dict,
        viewer_id: int,
        creatives,
        at: dt.datetime,
        position=1,
        *,
        fatigue=None,
        positions=None,
    ):
        """Rows for one decision: `context` holds age_band, gender, region, device, maturity,
        year, break_minutes, is_preroll and genres; `creatives` are index entries; `fatigue`
        the viewer's (`fatigue_from_buckets`). With `positions`, the creatives' rows at each
        of them in turn (position-major: the rows of the first position, then the next)."""
        base = self.context_row(context, viewer_id, at, position, fatigue)
        rows = np.tile(base, (len(creatives), 1))
        rows[:, self.creative_columns] = self.creative_block(creatives)
        if positions is None:
            return rows
        rows = np.tile(rows, (len(positions), 1))
        rows[:, self.position_column] = np.repeat(np.asarray(positions, float), len(creatives))
        return rows
