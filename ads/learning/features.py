"""CTR features: one encoding shared by training (rows from the event table) and serving
(a decision's context and its candidate creatives), so the two can never drift apart.

A row is an impression. Its features, all known at decision time:

* viewer: age band, gender (the profile);
* request: device and region (the decision's, which may differ from the profile's);
* title: maturity, year, genres (one column per genre);
* creative: category, duration, advertiser, and the creative itself (new ones are unknown);
* context: daypart and weekday in the advertiser's time zone, position in the pod (1 when
  ranking, since the pod is not built yet), break offset and whether it is a pre-roll.

Categorical values become integer codes from vocabularies fitted on the training rows;
an unseen value is NaN, which the gradient-boosted trees handle and the one-hot baseline
ignores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CATEGORICAL = [
    "age_band",
    "gender",
    "region",
    "device",
    "maturity",
    "category",
    "advertiser",
    "creative",
    "daypart",
    "weekday",
]
NUMERIC = ["year", "duration", "position", "break_minutes", "is_preroll"]


@dataclass
class CtrFeatures:
    """Fitted vocabularies; `matrix` turns a frame of raw columns into model input."""

    vocabularies: dict[str, dict] = field(default_factory=dict)
    genres: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [*CATEGORICAL, *NUMERIC, *(f"genre_{slug}" for slug in self.genres)]

    def fit(self, frame: pd.DataFrame) -> CtrFeatures:
        self.vocabularies = {
            name: {value: code for code, value in enumerate(sorted(frame[name].dropna().unique()))}
            for name in CATEGORICAL
        }
        self.genres = sorted({slug for slugs in frame["genres"] for slug in slugs})
        return self

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [
            frame[name].map(self.vocabularies[name]).to_numpy(dtype=float) for name in CATEGORICAL
        ]
        parts += [frame[name].to_numpy(dtype=float) for name in NUMERIC]
        genre_sets = frame["genres"].tolist()
        parts += [
            np.fromiter((slug in genres for genres in genre_sets), dtype=float, count=len(frame))
            for slug in self.genres
        ]
        return np.column_stack(parts) if len(frame) else np.empty((0, len(self.columns)))


def _code(vocabulary: dict, value) -> float:
    code = vocabulary.get(value)
    return float("nan") if code is None else float(code)


# Columns that vary per creative within one decision (the time features too, since they are
# read in each creative's advertiser's time zone).
CREATIVE_COLUMNS = ("category", "advertiser", "creative", "duration", "daypart", "weekday")


def serving_matrix(
    features: CtrFeatures, context: dict, creatives: list[dict], position: int = 1
) -> np.ndarray:
    """Rows for one decision: the context's columns, repeated, with each creative's own.

    `context` holds age_band, gender, region, device, maturity, year, break_minutes,
    is_preroll and genres; each creative dict holds CREATIVE_COLUMNS."""
    columns = features.columns
    base = np.empty(len(columns))
    for index, name in enumerate(CATEGORICAL):
        if name not in CREATIVE_COLUMNS:
            base[index] = _code(features.vocabularies[name], context[name])
    offset = len(CATEGORICAL)
    values = {
        "year": context["year"],
        "position": position,
        "break_minutes": context["break_minutes"],
        "is_preroll": context["is_preroll"],
    }
    for index, name in enumerate(NUMERIC):
        if name in values:
            base[offset + index] = float("nan") if values[name] is None else values[name]
    offset += len(NUMERIC)
    for index, slug in enumerate(features.genres):
        base[offset + index] = slug in context["genres"]
    rows = np.tile(base, (len(creatives), 1))
    for name in ("category", "advertiser", "creative", "daypart", "weekday"):
        column = CATEGORICAL.index(name)
        vocabulary = features.vocabularies[name]
        rows[:, column] = [_code(vocabulary, creative[name]) for creative in creatives]
    rows[:, len(CATEGORICAL) + NUMERIC.index("duration")] = [c["duration"] for c in creatives]
    return rows
