"""The engagement model: P(a viewer engages with a title), engaged meaning a rating of 4 or
more, or a viewing session finished (completed, or 90 % of the title watched).

`engagement_model_train` (nightly) fits it on the ratings and viewing sessions of a window and
registers it with `ml.services`; `engagement_predict` scores a batch of titles for a viewer with
the champion. The features and the model are shared with bench/engagement_ml100k.py.

Modules: `config` (settings), `factorization` and `statistics` (collaborative features),
`features` (the fitted transformer), `model` (the stored artifact), `data` (rows and attributes
from the database), `training` (the service), `predict` (serving).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engagement.learning.config import FeatureConfig, ModelConfig
    from engagement.learning.features import EngagementFeatures
    from engagement.learning.model import EngagementModel, FitReport
    from engagement.learning.predict import engagement_fallback, engagement_predict
    from engagement.learning.training import (
        EngagementTrainingError,
        default_window_end,
        engagement_model_train,
    )

# Each name's module, imported on first use (PEP 562): the model's module imports LightGBM,
# scikit-learn and SciPy (~2 s of CPU), and every process that loads the URLs reaches this
# package through the selectors, while only training and unpickling a champion need them.
_MODULES = {
    "FeatureConfig": "config",
    "ModelConfig": "config",
    "EngagementFeatures": "features",
    "EngagementModel": "model",
    "FitReport": "model",
    "engagement_fallback": "predict",
    "engagement_predict": "predict",
    "EngagementTrainingError": "training",
    "default_window_end": "training",
    "engagement_model_train": "training",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)


__all__ = [
    "EngagementFeatures",
    "EngagementModel",
    "EngagementTrainingError",
    "FeatureConfig",
    "FitReport",
    "ModelConfig",
    "default_window_end",
    "engagement_fallback",
    "engagement_model_train",
    "engagement_predict",
]
