"""pCTR inside a decision: the CTR champion scores every candidate creative of a request in
one batched call. Without a champion the engine keeps its Beta-posterior estimates."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from ads.decisioning.index import CreativeEntry, DemandIndex
from ads.learning.features import serving_matrix
from ads.models import daypart_at
from ml.models import ModelKind
from ml.serving import champion


def ctr_champion():
    """The CTR champion of this process (None until one is trained and promoted)."""
    return champion(ModelKind.CTR)


def predict_ctr(
    model, index: DemandIndex, context, creatives: list[CreativeEntry], at: datetime
) -> np.ndarray:
    """pCTR of each creative for this decision's viewer, title, break and time (position 1:
    ranking happens before the pod is built)."""
    title, viewer = context.title, context.viewer
    request = {
        "age_band": viewer.age_band,
        "gender": viewer.gender,
        "region": context.region,
        "device": context.device,
        "maturity": title.maturity_rating,
        "year": title.year,
        "break_minutes": context.ad_break.offset_seconds / 60,
        "is_preroll": float(context.ad_break.offset_seconds == 0),
        "genres": title.genre_slugs,
    }
    local_by_advertiser: dict[int, datetime] = {}
    rows = []
    for creative in creatives:
        local = local_by_advertiser.get(creative.advertiser_id)
        if local is None:
            zone = index.advertiser_tz.get(creative.advertiser_id)
            local = at.astimezone(zone) if zone else at
            local_by_advertiser[creative.advertiser_id] = local
        rows.append(
            {
                "category": creative.category,
                "advertiser": creative.advertiser_id,
                "creative": creative.id,
                "duration": creative.duration_seconds,
                "daypart": daypart_at(local),
                "weekday": local.weekday(),
            }
        )
    return model.predict_matrix(serving_matrix(model.features, request, rows))
