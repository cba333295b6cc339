"""How much advertising a session gets at a break (`ads.decisioning.ad_load`).

AD_LOAD_POLICY: `none` (the break's full pod, the default), `shorter` (every pod cut to
AD_LOAD_SHORTER_SHARE of the break's length) or `engagement` (the pod follows the session's live
engagement score, when the request gives one: below AD_LOAD_SKIP_BELOW the break is skipped,
below AD_LOAD_AT_RISK_BELOW the pod is cut to AD_LOAD_AT_RISK_SHARE, otherwise full).
"""

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

AD_LOAD_POLICIES = ("none", "shorter", "engagement")
AD_LOAD_POLICY = env.str("AD_LOAD_POLICY", default="none")
if AD_LOAD_POLICY not in AD_LOAD_POLICIES:
    raise ImproperlyConfigured(f"AD_LOAD_POLICY must be one of {', '.join(AD_LOAD_POLICIES)}.")
AD_LOAD_SHORTER_SHARE = env.float("AD_LOAD_SHORTER_SHARE", default=0.5)
AD_LOAD_AT_RISK_BELOW = env.float("AD_LOAD_AT_RISK_BELOW", default=0.4)
AD_LOAD_AT_RISK_SHARE = env.float("AD_LOAD_AT_RISK_SHARE", default=0.5)
AD_LOAD_SKIP_BELOW = env.float("AD_LOAD_SKIP_BELOW", default=0.0)
