"""The engagement model: P(a viewer engages with a title), engaged meaning a rating of 4 or
more, or a viewing session finished (completed, or 90 % of the title watched).

`engagement_model_train` (nightly) fits it on the ratings and viewing sessions of a window and
registers it with `ml.services`; `engagement_predict` scores a batch of titles for a viewer with
the champion. The features and the model are shared with bench/engagement_ml100k.py.

Modules: `config` (settings), `factorization` and `statistics` (collaborative features),
`features` (the fitted transformer), `model` (the stored artifact), `data` (rows and attributes
from the database), `training` (the service), `predict` (serving).
"""

from engagement.learning.config import FeatureConfig, ModelConfig
from engagement.learning.features import EngagementFeatures
from engagement.learning.model import EngagementModel, FitReport
from engagement.learning.predict import engagement_fallback, engagement_predict
from engagement.learning.training import (
    EngagementTrainingError,
    default_window_end,
    engagement_model_train,
)

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
