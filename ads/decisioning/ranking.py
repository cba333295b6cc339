"""Expected value per impression, and the click-through estimate behind it.

pCTR, until a trained CTR model is the champion, is the mean of a Beta posterior per creative
whose prior is its category's observed click-through rate (itself shrunk toward a platform-wide
prior), so a new creative starts at its category's rate and moves to its own as clicks come in.

Exploration: a capped share of decisions (EXPLORATION_SHARE) ranks creatives with few
impressions by a Thompson sample from their posterior instead of its mean, so new creatives
get the impressions that tell us their rate. Exploring decisions are counted per day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PLATFORM_PRIOR_CTR = 0.01
PLATFORM_PRIOR_STRENGTH = 1_000  # impressions' worth of belief in the platform prior
CATEGORY_PRIOR_STRENGTH = 200  # impressions' worth of belief in the category's rate
EXPLORE_BELOW_IMPRESSIONS = 2_000
EXPLORATION_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class Posterior:
    alpha: float
    beta: float
    impressions: int

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: random.Random) -> float:
        return rng.betavariate(self.alpha, self.beta)


def category_ctr(impressions: int, clicks: int) -> float:
    prior_clicks = PLATFORM_PRIOR_CTR * PLATFORM_PRIOR_STRENGTH
    return (prior_clicks + clicks) / (PLATFORM_PRIOR_STRENGTH + impressions)


def creative_posterior(category_rate: float, impressions: int, clicks: int) -> Posterior:
    clicks = min(clicks, impressions)
    return Posterior(
        alpha=category_rate * CATEGORY_PRIOR_STRENGTH + clicks,
        beta=(1 - category_rate) * CATEGORY_PRIOR_STRENGTH + impressions - clicks,
        impressions=impressions,
    )


def expected_value(*, is_cpm: bool, bid: float, pctr: float, pacing_factor: float) -> float:
    """Value of one impression per mille: a CPM bid, or a CPC bid × pCTR × 1000."""
    value = bid if is_cpm else bid * pctr * 1000
    return value * pacing_factor
