"""A CTR champion for bench/decisions.py's world, trained by the nightly training's own code
(`ads.learning.training.fit_models`) on impressions made up for the world's own viewers,
titles, breaks and creatives, with clicks drawn from a truth of this file (the simulator's
truth is private to the simulator, and simulating days of traffic on a world of 1,000 line
items would take the bench minutes). The truth has the shape of the simulator's: main effects
of viewer, device, clock, title, break, position and creative, interactions of category with
age band, genre and gender and of device with daypart, and hidden per-viewer, per-creative and
per-advertiser terms, about 1 % CTR on average. What the bench measures is the champion's
cost in a decision, so what matters is that the trees are grown by the nightly training on
data of a realistic size and shape, and that they know the world's creatives and advertisers.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
import uuid

import pandas as pd

ROWS = 150_000
DAYS = 14


def _effects(rng: random.Random, names, spread: float) -> dict:
    return {name: rng.uniform(-spread, spread) for name in names}


def training_frame(rows: int = ROWS, seed: int = 5) -> pd.DataFrame:
    """`rows` impressions over the last DAYS days, with the columns `training_frame` makes
    from the event table (fatigue columns aside: the served champion has none)."""
    from django.utils import timezone

    from ads.decisioning.index import current_index
    from ads.learning.features import viewer_clock
    from ads.models import Creative
    from catalog.models import AgeBand, Device, Genre, MaturityRating

    rng = random.Random(seed)
    index = current_index()
    viewers = [viewer for viewer in index.viewers.values() if not viewer.is_kids]
    breaks = list(index.breaks.values())
    creatives = [creative for line_item in index.line_items for creative in line_item.creatives]
    categories = Creative.Category.values
    slugs = list(Genre.objects.values_list("slug", flat=True))
    age = _effects(rng, AgeBand.values, 0.3)
    device = _effects(rng, Device.values, 0.4)
    category = _effects(rng, categories, 0.3)
    maturity = _effects(rng, MaturityRating.values, 0.1)
    daypart_names = ("morning", "daytime", "prime", "late")
    daypart = _effects(rng, daypart_names, 0.15)
    category_age = {
        (name, band): rng.gauss(0, 0.45) for name in categories for band in AgeBand.values
    }
    genre_category = {(slug, name): rng.gauss(0, 0.4) for slug in slugs for name in categories}
    gender_category = {(g, name): rng.gauss(0, 0.2) for g in ("m", "f", "") for name in categories}
    device_daypart = {(d, p): rng.gauss(0, 0.3) for d in Device.values for p in daypart_names}
    creative_term = {creative.id: rng.uniform(-0.25, 0.25) for creative in creatives}
    advertiser_term = {
        advertiser: rng.uniform(-0.15, 0.15)
        for advertiser in {creative.advertiser_id for creative in creatives}
    }
    viewer_term = {viewer.id: rng.gauss(0, 0.35) for viewer in viewers}
    duration = {15: 0.1, 30: 0.0, 60: -0.15}

    end = timezone.now().replace(microsecond=0)
    start = end - dt.timedelta(days=DAYS)
    span = (end - start).total_seconds()
    records = []
    for _ in range(rows):
        viewer = rng.choice(viewers)
        ad_break = rng.choice(breaks)
        title = index.titles[ad_break.title_id]
        creative = rng.choice(creatives)
        position = rng.choices((1, 2, 3, 4), weights=(45, 30, 17, 8))[0]
        screen = viewer.device if rng.random() < 0.8 else rng.choice(Device.values)
        at = start + dt.timedelta(seconds=rng.random() * span)
        part, hour, weekend = viewer_clock(viewer.region, at)
        genres = title.genre_slugs
        logit = (
            -4.75
            + age.get(viewer.age_band, 0.0)
            + device[screen]
            + daypart.get(part, 0.0)
            + 0.1 * weekend
            + category[creative.category]
            + duration.get(creative.duration_seconds, 0.0)
            - 0.15 * (position - 1)
            + (-0.2 if ad_break.offset_seconds == 0 else 0.0)
            + maturity.get(title.maturity_rating, 0.0)
            + (0.1 if (title.year or 0) >= 2015 else 0.0)
            + category_age.get((creative.category, viewer.age_band), 0.0)
            + device_daypart.get((screen, part), 0.0)
            + gender_category.get((viewer.gender, creative.category), 0.0)
            + (
                sum(genre_category[(slug, creative.category)] for slug in genres) / len(genres)
                if genres
                else 0.0
            )
            + (-0.5 if creative.duration_seconds >= 60 and position >= 3 else 0.0)
            + creative_term[creative.id]
            + advertiser_term[creative.advertiser_id]
            + viewer_term[viewer.id]
        )
        clicked = rng.random() < 1 / (1 + math.exp(-logit))
        records.append(
            (
                at,
                uuid.UUID(int=rng.getrandbits(128)),
                viewer.id,
                creative.line_item_id,
                viewer.age_band,
                viewer.gender,
                viewer.region,
                screen,
                title.id,
                title.maturity_rating,
                title.year,
                creative.category,
                creative.duration_seconds,
                creative.advertiser_id,
                creative.id,
                position,
                ad_break.offset_seconds,
                genres,
                part,
                hour,
                weekend,
                int(clicked),
            )
        )
    frame = pd.DataFrame.from_records(
        records,
        columns=[
            "occurred_at",
            "decision_id",
            "viewer_id",
            "line_item",
            "age_band",
            "gender",
            "region",
            "device",
            "title_id",
            "maturity",
            "year",
            "category",
            "duration",
            "advertiser",
            "creative",
            "position",
            "break_offset",
            "genres",
            "viewer_daypart",
            "viewer_hour",
            "viewer_weekend",
            "label",
        ],
    )
    frame = frame.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    frame["break_minutes"] = frame["break_offset"] / 60
    frame["is_preroll"] = (frame["break_offset"] == 0).astype(float)
    return frame


def train(rows: int = ROWS):
    """(the served trees, their held-out metrics, seconds): trained as nightly, the last day
    held out."""
    from ads.learning import training
    from ml import selectors as ml_selectors

    began = time.perf_counter()
    frame = training_frame(rows)
    end = frame["occurred_at"].max() + dt.timedelta(seconds=1)
    fit, calibrate, holdout = training.split_by_time(frame, end - dt.timedelta(days=1))
    trees = training.fit_models(fit, calibrate)[1]
    metrics = ml_selectors.model_metrics(holdout["label"].to_numpy(), trees.predict_frame(holdout))
    return trees, metrics, time.perf_counter() - began


def register(model, version: int = 1):
    """The model as a CTR version in the registry (not promoted)."""
    from ml import services as ml_services
    from ml.models import ModelKind, ModelVersion

    return ModelVersion.objects.create(
        kind=ModelKind.CTR,
        version=version,
        algorithm=model.algorithm,
        metrics={},
        feature_spec={},
        train_rows=0,
        holdout_rows=0,
        artifact=ml_services.artifact_dumps(model),
    )


def trees_count(model) -> int:
    booster = getattr(model.estimator, "booster_", None)
    return booster.num_trees() if booster is not None else 0
