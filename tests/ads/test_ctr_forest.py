"""The CTR champion's fast path (ads.learning.forest, scoring.forest_ranking): the trees as
arrays give the booster's own scores bit for bit, and a decision ranks its candidates and
fills its pod exactly as the booster's path (`engine._model_scored`, `engine._explored`)."""

import datetime as dt
import math
import random
from decimal import Decimal

import lightgbm
import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from ads.decisioning import engine
from ads.decisioning.index import current_index
from ads.decisioning.scoring import ctr_champion, forest_ranking
from ads.decisioning.state import state_holder
from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.learning.estimators import CtrModel, IsotonicCalibrator
from ads.learning.features import CATEGORICAL, CtrFeatures, viewer_clock
from ads.learning.forest import CompiledForest
from ads.models import Creative
from catalog.models import AgeBand, Device, Region
from ml import selectors as ml_selectors
from ml import services as ml_services
from ml.models import ModelKind, ModelVersion
from tests.ads.conftest import line_item_with_creative, rebuild
from tests.factories import (
    AdBreakFactory,
    AdvertiserFactory,
    GenreFactory,
    TitleFactory,
    ViewerFactory,
)


def _booster(rows: int = 4000, seed: int = 0):
    """A binary booster on categorical columns (one with missing values in training, so its
    nodes have the NaN missing type, one without) and numerical ones with NaN."""
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.integers(0, 12, rows).astype(float),
            rng.integers(0, 40, rows).astype(float),
            rng.normal(0, 1, rows),
            rng.integers(0, 2, rows).astype(float),
            rng.normal(5, 3, rows),
        ]
    )
    logit = -2 + 0.8 * np.isin(x[:, 0], [1, 3, 7]) + 0.05 * x[:, 1] * (x[:, 2] > 0) + 0.5 * x[:, 3]
    labels = rng.random(rows) < 1 / (1 + np.exp(-logit))
    missing = rng.random(x.shape) < 0.05
    # Columns 1 and 3 have no NaN in training: their nodes' missing type is None, which
    # reads NaN as 0 (numerical) and sends it right (categorical).
    missing[:, [1, 3]] = False
    x[missing] = np.nan
    model = lightgbm.LGBMClassifier(
        n_estimators=60, num_leaves=31, min_child_samples=5, verbose=-1, num_threads=1
    )
    model.fit(x, labels, categorical_feature=[0, 1])
    return model.booster_, rng


def test_the_compiled_forest_scores_as_the_booster_bit_for_bit():
    booster, rng = _booster()
    forest = CompiledForest.from_booster(booster)
    rows = np.column_stack(
        [
            rng.integers(-2, 15, 3000).astype(float),  # negative and unseen codes too
            rng.integers(-1, 45, 3000).astype(float),
            rng.normal(0, 1.5, 3000),
            rng.integers(0, 2, 3000).astype(float),
            rng.normal(5, 4, 3000),
        ]
    )
    rows[rng.random(rows.shape) < 0.1] = np.nan
    raw = booster.predict(rows, raw_score=True, num_threads=1)
    # Bit for bit, not approximately: the fast path must rank exactly as the booster.
    assert forest.raw(rows).tobytes() == raw.tobytes()
    assert forest.probability(forest.raw(rows)).tobytes() == booster.predict(rows).tobytes()
    assert forest.trees == booster.num_trees() == 60


CATEGORIES = [
    Creative.Category.AUTOMOTIVE,
    Creative.Category.TECHNOLOGY,
    Creative.Category.TRAVEL,
    Creative.Category.FINANCE,
    Creative.Category.RETAIL,
]
AGES = [AgeBand.AGE_18_24, AgeBand.AGE_35_44, AgeBand.AGE_55_PLUS]
DEVICES = [Device.CTV, Device.MOBILE, Device.DESKTOP]


def _champion_world(at: dt.datetime):
    """A world where the champion decides the ranking: 24 CPC line items (1 to 3 creatives
    of varied categories and lengths, bids close enough for pCTR to reorder them) beside 16
    CPM ones, 6 advertisers, viewers and titles of several kinds; and a LightGBM champion
    trained on made-up impressions of these creatives whose clicks depend on the creative
    and on its fit with the viewer, device and title."""
    rng = random.Random(3)
    advertisers = [AdvertiserFactory(timezone="UTC") for _ in range(6)]
    creatives = []
    for number in range(40):
        cpc = number < 24
        line_item = line_item_with_creative(
            advertisers[number % 6],
            pricing="cpc" if cpc else "cpm",
            bid=Decimal(rng.randint(150, 260)) / 100 if cpc else Decimal(rng.randint(8, 30)),
            category=rng.choice(CATEGORIES),
            duration=rng.choice([15, 30, 60]),
            creatives=rng.randint(1, 3) if cpc else 1,
        )
        for creative in line_item.creatives.all():
            creative.category = rng.choice(CATEGORIES)
            creative.save()
            creatives.append(creative)
    genres = [GenreFactory() for _ in range(3)]
    breaks = []
    for number in range(6):
        title = TitleFactory(year=1970 + 9 * number, maturity_rating=rng.choice(["PG", "R"]))
        title.genres.set(rng.sample(genres, 2))
        breaks += [
            AdBreakFactory(title=title, offset_seconds=offset, max_pod_duration_seconds=120)
            for offset in (0, 900)
        ]
    viewers = [
        ViewerFactory(
            external_id=f"forest-{number}",
            age_band=AGES[number % 3],
            region=[Region.WEST, Region.SOUTH][number % 2],
            device=DEVICES[number % 3],
        )
        for number in range(12)
    ]
    affinity = {(c, a): rng.gauss(0, 0.7) for c in CATEGORIES for a in AGES}
    appeal = {creative.pk: rng.gauss(0, 0.5) for creative in creatives}
    records = []
    for number in range(6000):
        viewer, ad_break, creative = (
            rng.choice(viewers),
            rng.choice(breaks),
            rng.choice(creatives),
        )
        device = rng.choice(DEVICES)
        when = at - dt.timedelta(days=3) + dt.timedelta(seconds=number * 43)
        daypart, hour, weekend = viewer_clock(viewer.region, when)
        logit = (
            -2.5
            + affinity[(creative.category, viewer.age_band)]
            + appeal[creative.pk]
            + (0.4 if device == Device.MOBILE else 0.0)
            + (0.3 if ad_break.offset_seconds == 0 and creative.duration_seconds == 15 else 0)
            + 0.01 * ((ad_break.title.year or 2000) - 1990)
        )
        records.append(
            {
                "occurred_at": when,
                "viewer_id": viewer.pk,
                "line_item": creative.line_item_id,
                "age_band": viewer.age_band,
                "gender": viewer.gender,
                "region": viewer.region,
                "device": device,
                "maturity": ad_break.title.maturity_rating,
                "year": ad_break.title.year,
                "category": creative.category,
                "duration": creative.duration_seconds,
                "advertiser": creative.advertiser_id,
                "creative": creative.pk,
                "position": 1,
                "break_minutes": ad_break.offset_seconds / 60,
                "is_preroll": float(ad_break.offset_seconds == 0),
                "genres": frozenset(ad_break.title.genres.values_list("slug", flat=True)),
                "viewer_daypart": daypart,
                "viewer_hour": hour,
                "viewer_weekend": weekend,
                "label": int(rng.random() < 1 / (1 + math.exp(-logit))),
            }
        )
    # Impressions for some creatives: posteriors of different strengths, and line items
    # whose best creative is past exploring (EXPLORE_BELOW_IMPRESSIONS) beside ones not.
    counters().add_many(
        [
            Bump(keys.creative_impressions(creative.pk), rng.choice([300, 2500, 6000]))
            for creative in creatives
            if rng.random() < 0.5
        ]
    )
    frame = pd.DataFrame(records)
    features = CtrFeatures().fit(frame)
    matrix, labels = features.matrix(frame), frame["label"].to_numpy()
    trees = lightgbm.LGBMClassifier(
        n_estimators=80, num_leaves=15, min_child_samples=20, verbose=-1, num_threads=1
    ).fit(matrix, labels, categorical_feature=list(range(len(CATEGORICAL))))
    calibrator = IsotonicCalibrator().fit(trees.booster_.predict(matrix), labels)
    model = CtrModel(features, trees, calibrator, "LightGBM (test)")
    version = ModelVersion.objects.create(
        kind=ModelKind.CTR,
        version=1,
        algorithm=model.algorithm,
        metrics={},
        feature_spec={},
        train_rows=len(frame),
        holdout_rows=0,
        artifact=ml_services.artifact_dumps(model),
    )
    ml_services.model_version_promote(model_version=version)
    ml_selectors.champions_reload()
    rebuild()
    return viewers, breaks


class AcceptingStore:
    """Counters that grant every reservation and remember nothing: both paths' pods are
    filled from the same state."""

    class full:  # noqa: N801 - the attribute the engine reads
        @staticmethod
        def known_full(group) -> bool:
            return False

    @staticmethod
    def reserve(groups, **options):
        return [True] * len(groups)

    @staticmethod
    def add_many(bumps) -> None:
        pass


def _ranking(entries) -> list:
    return [
        (
            entry.line_item.id,
            entry.score,
            [(c.id, p.alpha, p.beta, p.impressions) for c, p in entry.creatives],
        )
        for entry in entries
    ]


def _pod(pod) -> list:
    return [
        (slot.position, slot.line_item.id, slot.creative.id, slot.score, slot.pctr) for slot in pod
    ]


@pytest.mark.django_db
def test_the_fast_path_ranks_and_fills_pods_exactly_as_the_booster(settings):
    settings.CTR_SLOT_RANKING = False
    at = timezone.now().replace(microsecond=0)
    viewers, breaks = _champion_world(at)
    model = ctr_champion().model
    assert model.forest is not None and model.forest.trees == 80
    index = current_index()
    state = state_holder.get(index, counters(), at)
    checked = explored = cpc_in_pods = reordered = 0
    for number in range(240):
        pick = random.Random(number)
        ad_break = pick.choice(breaks)
        request = engine.DecisionRequest(
            viewer_id=pick.choice(viewers).external_id,
            title_id=ad_break.title_id,
            ad_break_id=ad_break.pk,
            device=pick.choice(DEVICES),
        )
        context = engine._resolve(index, request, at + dt.timedelta(minutes=number % 50))
        eligible = engine._eligible(index, state, context)
        exploring = number % 3 == 0
        exact = engine._explored(
            engine._model_scored(
                state.candidates(eligible), model, index, context, context.at, counters()
            ),
            exploring,
            random.Random(number),
        )
        fast = forest_ranking(
            state,
            eligible,
            model,
            context,
            context.at,
            counters(),
            random.Random(number) if exploring else None,
        )
        assert _ranking(fast) == _ranking(exact), number
        pods = [
            engine._fill_pod(ranked, context, AcceptingStore(), random.Random(number))
            for ranked in (
                exact,
                forest_ranking(
                    state,
                    eligible,
                    model,
                    context,
                    context.at,
                    counters(),
                    random.Random(number) if exploring else None,
                ),
            )
        ]
        assert _pod(pods[0]) == _pod(pods[1]), number
        checked += 1
        explored += exploring
        cpc_in_pods += any(not slot.line_item.is_cpm for slot in pods[0])
        without_model = [entry.line_item.id for entry in state.candidates(eligible)]
        reordered += without_model != [entry.line_item.id for entry in exact]
    # The comparison means something: the champion reorders most rankings, CPC line items
    # reach the pods, and exploring decisions were compared too.
    assert checked == 240 and explored == 80
    assert reordered > 200
    assert cpc_in_pods > 100
