"""The ad load policy: how long a pod a session gets at a break (config/settings/ad_load.py).

The engine asks once per decision, before it fills the pod. `engagement` is the one policy
that needs to know the session: the request's `engagement_score`, the live engagement score
(the probability that the viewer finishes the title, engagement/live.py) as the player or the
SSAI server last had it. A request without one gets the full pod: the policy only ever
lightens the load for sessions known to be at risk.
"""

from __future__ import annotations

from django.conf import settings

from ads.models import Creative

SHORTEST_CREATIVE = min(Creative.Duration.values)


def pod_seconds(*, max_seconds: int, engagement_score: float | None) -> int:
    """The most seconds of ads to play at this break (0: skip it)."""
    policy = settings.AD_LOAD_POLICY
    if policy == "shorter":
        return max(SHORTEST_CREATIVE, round(max_seconds * settings.AD_LOAD_SHORTER_SHARE))
    if policy != "engagement" or engagement_score is None:
        return max_seconds
    if engagement_score < settings.AD_LOAD_SKIP_BELOW:
        return 0
    if engagement_score < settings.AD_LOAD_AT_RISK_BELOW:
        return max(SHORTEST_CREATIVE, round(max_seconds * settings.AD_LOAD_AT_RISK_SHARE))
    return max_seconds
