"""pCTR inside a decision: the CTR champion scores every candidate creative of a request in
one batched call. Without a champion the engine keeps its Beta-posterior estimates."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from ads.decisioning.index import CreativeEntry, DemandIndex
from ads.learning.features import FORMAT_VERSION
from ml import selectors as ml_selectors
from ml.models import ModelKind


def ctr_champion():
    """The CTR champion of this process (None until one is trained and promoted, or while
    the champion is an artifact of an older feature layout, which cannot score requests)."""
    current = ml_selectors.champion(ModelKind.CTR)
    if current is None or getattr(current.model, "format_version", 1) != FORMAT_VERSION:
        return None
    return current


def predict_ctr(
    model, index: DemandIndex, context, creatives: list[CreativeEntry], at: datetime
) -> np.ndarray:
    """pCTR of each creative for this decision's viewer, title, break and time (position 1:
    ranking happens before the pod is built). The rows are built with numpy from the
    request's row and each creative's cached columns (ads.learning.features.ServingRows)."""
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
    rows = model.serving.matrix(request, viewer.id, creatives, at)
    return model.predict_matrix(rows)
