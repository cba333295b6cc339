"""THE ground truth of the simulated world: how likely a viewer is to click an ad, and to
watch it to the end.

Private to the simulator. Nothing outside ``demo/simulation/`` (its own tests aside) may
import this module (a test greps the source tree): the CTR and engagement models must learn
these effects from the events the simulator fires, never read them here. The simulator writes
each impression's true click probability to ``--truth-out`` so that models can be judged
against it later.

Both probabilities are logistic: ``p = 1 / (1 + exp(-logit))``, the logit a sum of the named
terms below (``click_terms`` and ``completion_terms`` return them one by one). Everything is
deterministic: the per-viewer, per-creative and per-advertiser effects are hashes of their
ids, not random draws. Times are the viewer's own (the region's time zone), while targeting
and the models' features see the advertiser's: one more reason no model reaches the truth.

Click-through, around 1 % on average (the base is logit(0.9 %); the spread of the terms
raises the mean a little):

* ``base``: −4.70.
* ``age_band``: younger viewers click more (18–24 +0.25 … 55+ −0.30).
* ``gender``: small (men −0.05, women and unknown 0).
* ``region``: viewers outside the US click less (−0.20; the ads are US-made).
* ``device``: the session's device: a phone is one tap (+0.35), a tablet +0.20, a desktop
  +0.10, a TV remote is awkward (−0.45).
* ``daypart``: in the viewer's own time: prime time +0.10, morning +0.05, daytime 0, late
  night −0.20 (tired).
* ``weekend``: Saturday and Sunday +0.10 (time to browse).
* ``category``: some products invite a click (entertainment +0.25, technology +0.20, travel
  +0.15 …), others do not (insurance −0.30, household −0.20, finance −0.15 …).
* ``duration``: short ads get clicks (15 s +0.10), long ones fewer (60 s −0.15).
* ``position``: attention fades down the pod: −0.15 for each slot after the first.
* ``break``: a pre-roll stands between the viewer and the title (−0.20); deep mid-rolls,
  an hour or more in, reach committed viewers (+0.10).
* ``maturity``: family titles +0.10 (G, PG), R and NC-17 −0.10.
* ``title_age``: recent titles (2015 on) +0.10, classics (before 1980) −0.10.
* ``fatigue``: −0.04 for each ad the session already played, at most −0.40.
* Interactions, which a model of main effects alone cannot express (sized so that, with a
  hundred thousand impressions or more, gradient-boosted trees clearly beat a logistic
  regression on one-hot features, and neither reaches the truth):
  - ``category_x_age``: affinity of a product for an age band (cars for 45–54 +0.90 and
    18–24 −0.60, technology for 18–24 +0.80 and 55+ −0.60, insurance for 55+ +1.00,
    beverages for 18–24 +0.70 …; table CATEGORY_AGE_AFFINITY).
  - ``device_x_daypart``: phones in the morning commute +0.60, desktops in office hours
    +0.60, TVs in prime time +0.60, tablets late at night +0.40, TVs in the morning and
    desktops late at night −0.40.
  - ``genre_x_category``: mean over the title's genres of a genre's affinity for the
    product (action with cars +0.80, sci-fi with technology +0.90, romance with travel
    +0.80, children's and animation with fast food +0.80, children's with finance −0.80 …;
    GENRE_CATEGORY_AFFINITY).
  - ``gender_x_category``: women with household goods and health +0.40, men with cars +0.30.
  - ``long_ad_late_in_pod``: a 60 s ad in third place or later −0.50 (a threshold effect).
* Hidden heterogeneity, hashed from ids, which no feature explains:
  - ``viewer``: each viewer's own propensity to click, roughly normal with sd 0.35.
  - ``creative``: each creative's appeal, uniform in ±0.25.
  - ``advertiser``: each brand's pull, uniform in ±0.15.

Completion, around 75 % on average (base logit(0.78)):

* ``base``: +1.27.
* ``duration``: 15 s +0.80, 30 s 0, 60 s −0.70.
* ``device``: a TV plays on (+0.70), a tablet 0, a desktop −0.30, a phone −0.50.
* ``position``: −0.20 for each slot after the first.
* ``break``: pre-roll −0.20 (impatient to start).
* ``daypart``: late night −0.20.
* ``age_band``: 18–24 −0.30, 25–34 −0.10, 45–54 +0.10, 55+ +0.30.
* ``interest``: a quarter of the click model's category × age and genre × category
  affinities (an ad one cares for is watched to the end).
* ``fatigue``: −0.05 for each ad the session already played, at most −0.50.
* ``viewer``: the viewer's patience, hashed, roughly normal with sd 0.30.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from statistics import NormalDist

from demo.simulation.profiles import AdContext, CreativeProfile, TitleProfile, ViewerProfile

_NORMAL = NormalDist()

CLICK_BASE = -4.70
COMPLETION_BASE = 1.27

AGE_BAND_CLICK = {
    "under_18": 0.10,
    "18_24": 0.25,
    "25_34": 0.15,
    "35_44": 0.0,
    "45_54": -0.15,
    "55_plus": -0.30,
}
GENDER_CLICK = {"F": 0.0, "M": -0.05, "": 0.0}
INTERNATIONAL_CLICK = -0.20
DEVICE_CLICK = {"mobile": 0.35, "tablet": 0.20, "desktop": 0.10, "ctv": -0.45}
DAYPART_CLICK = {"morning": 0.05, "daytime": 0.0, "primetime": 0.10, "late_night": -0.20}
WEEKEND_CLICK = 0.10
CATEGORY_CLICK = {
    "entertainment": 0.25,
    "technology": 0.20,
    "travel": 0.15,
    "fast_food": 0.10,
    "retail": 0.10,
    "beverages": 0.0,
    "automotive": -0.05,
    "health": -0.05,
    "telecom": -0.10,
    "finance": -0.15,
    "household": -0.20,
    "insurance": -0.30,
}
DURATION_CLICK = {15: 0.10, 30: 0.0, 60: -0.15}
POSITION_CLICK = -0.15  # per slot after the first
PRE_ROLL_CLICK = -0.20
DEEP_MID_ROLL_CLICK = 0.10
DEEP_MID_ROLL_SECONDS = 3600
MATURITY_CLICK = {"G": 0.10, "PG": 0.10, "PG-13": 0.0, "R": -0.10, "NC-17": -0.10}
RECENT_TITLE_YEAR, RECENT_TITLE_CLICK = 2015, 0.10
CLASSIC_TITLE_YEAR, CLASSIC_TITLE_CLICK = 1980, -0.10
FATIGUE_CLICK, FATIGUE_CLICK_FLOOR = -0.04, -0.40

# How much a product speaks to an age band (missing pairs: 0).
CATEGORY_AGE_AFFINITY: dict[tuple[str, str], float] = {
    ("automotive", "18_24"): -0.60,
    ("automotive", "45_54"): 0.90,
    ("automotive", "55_plus"): 0.60,
    ("beverages", "under_18"): 0.40,
    ("beverages", "18_24"): 0.70,
    ("beverages", "55_plus"): -0.40,
    ("entertainment", "under_18"): 0.80,
    ("entertainment", "18_24"): 0.60,
    ("fast_food", "under_18"): 0.60,
    ("fast_food", "18_24"): 0.60,
    ("fast_food", "55_plus"): -0.50,
    ("finance", "25_34"): 0.70,
    ("finance", "35_44"): 0.60,
    ("finance", "under_18"): -0.80,
    ("health", "55_plus"): 0.80,
    ("health", "45_54"): 0.40,
    ("household", "35_44"): 0.60,
    ("insurance", "45_54"): 0.60,
    ("insurance", "55_plus"): 1.00,
    ("insurance", "18_24"): -0.60,
    ("technology", "18_24"): 0.80,
    ("technology", "25_34"): 0.60,
    ("technology", "55_plus"): -0.60,
    ("telecom", "18_24"): 0.40,
    ("travel", "25_34"): 0.40,
    ("travel", "55_plus"): 0.60,
}
DEVICE_DAYPART_CLICK: dict[tuple[str, str], float] = {
    ("mobile", "morning"): 0.60,
    ("desktop", "daytime"): 0.60,
    ("ctv", "primetime"): 0.60,
    ("tablet", "late_night"): 0.40,
    ("ctv", "morning"): -0.40,
    ("desktop", "late_night"): -0.40,
}
# How much a title's genre primes its audience for a product (missing pairs: 0).
GENRE_CATEGORY_AFFINITY: dict[tuple[str, str], float] = {
    ("action", "automotive"): 0.80,
    ("adventure", "automotive"): 0.60,
    ("adventure", "travel"): 0.70,
    ("animation", "fast_food"): 0.80,
    ("animation", "entertainment"): 0.60,
    ("childrens", "fast_food"): 0.80,
    ("childrens", "entertainment"): 0.80,
    ("childrens", "finance"): -0.80,
    ("comedy", "beverages"): 0.60,
    ("comedy", "fast_food"): 0.50,
    ("crime", "insurance"): 0.50,
    ("documentary", "finance"): 0.60,
    ("documentary", "insurance"): 0.60,
    ("documentary", "fast_food"): -0.60,
    ("drama", "health"): 0.40,
    ("fantasy", "entertainment"): 0.60,
    ("horror", "entertainment"): 0.40,
    ("horror", "household"): -0.60,
    ("musical", "entertainment"): 0.50,
    ("romance", "travel"): 0.80,
    ("romance", "retail"): 0.50,
    ("sci-fi", "technology"): 0.90,
    ("sci-fi", "telecom"): 0.40,
    ("thriller", "insurance"): 0.40,
    ("war", "automotive"): 0.40,
}
GENDER_CATEGORY_CLICK: dict[tuple[str, str], float] = {
    ("F", "household"): 0.40,
    ("F", "health"): 0.40,
    ("M", "automotive"): 0.30,
}
LONG_AD_LATE_CLICK = -0.50  # a 60 s ad at position 3 or later

VIEWER_CLICK_SD = 0.35
CREATIVE_CLICK_SPREAD = 0.25
ADVERTISER_CLICK_SPREAD = 0.15

DURATION_COMPLETION = {15: 0.80, 30: 0.0, 60: -0.70}
DEVICE_COMPLETION = {"ctv": 0.70, "tablet": 0.0, "desktop": -0.30, "mobile": -0.50}
POSITION_COMPLETION = -0.20
PRE_ROLL_COMPLETION = -0.20
LATE_NIGHT_COMPLETION = -0.20
AGE_BAND_COMPLETION = {"18_24": -0.30, "25_34": -0.10, "45_54": 0.10, "55_plus": 0.30}
INTEREST_COMPLETION = 0.25  # times the click model's affinities
FATIGUE_COMPLETION, FATIGUE_COMPLETION_FLOOR = -0.05, -0.50
VIEWER_COMPLETION_SD = 0.30


def daypart(local_hour: int) -> str:
    """The same parts of the day as line-item targeting, in the viewer's own time."""
    if 6 <= local_hour < 12:
        return "morning"
    if 12 <= local_hour < 17:
        return "daytime"
    if 17 <= local_hour < 23:
        return "primetime"
    return "late_night"


@lru_cache(maxsize=65_536)
def _unit(*parts: object) -> float:
    """A stable number in (0, 1) from `parts` (Python's own hash is salted per process)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def _normal(sd: float, *parts: object) -> float:
    return sd * _NORMAL.inv_cdf(_unit(*parts))


def _spread(width: float, *parts: object) -> float:
    return width * (2 * _unit(*parts) - 1)


def _genre_affinity(title: TitleProfile, category: str) -> float:
    if not title.genres:
        return 0.0
    return sum(GENRE_CATEGORY_AFFINITY.get((genre, category), 0.0) for genre in title.genres) / len(
        title.genres
    )


def _break_term(context: AdContext, pre_roll: float, deep: float) -> float:
    if context.break_offset_seconds == 0:
        return pre_roll
    return deep if context.break_offset_seconds >= DEEP_MID_ROLL_SECONDS else 0.0


def click_terms(
    *,
    viewer: ViewerProfile,
    title: TitleProfile,
    creative: CreativeProfile,
    context: AdContext,
) -> dict[str, float]:
    """The click logit's terms by name (documented in the module docstring)."""
    part = daypart(context.local_hour)
    year = title.year
    return {
        "base": CLICK_BASE,
        "age_band": AGE_BAND_CLICK.get(viewer.age_band, 0.0),
        "gender": GENDER_CLICK.get(viewer.gender, 0.0),
        "region": INTERNATIONAL_CLICK if viewer.region == "intl" else 0.0,
        "device": DEVICE_CLICK.get(context.device, 0.0),
        "daypart": DAYPART_CLICK[part],
        "weekend": WEEKEND_CLICK if context.weekday >= 5 else 0.0,
        "category": CATEGORY_CLICK.get(creative.category, 0.0),
        "duration": DURATION_CLICK.get(creative.duration_seconds, 0.0),
        "position": POSITION_CLICK * (context.position - 1),
        "break": _break_term(context, PRE_ROLL_CLICK, DEEP_MID_ROLL_CLICK),
        "maturity": MATURITY_CLICK.get(title.maturity_rating, 0.0),
        "title_age": (
            RECENT_TITLE_CLICK
            if year is not None and year >= RECENT_TITLE_YEAR
            else CLASSIC_TITLE_CLICK
            if year is not None and year < CLASSIC_TITLE_YEAR
            else 0.0
        ),
        "fatigue": max(FATIGUE_CLICK_FLOOR, FATIGUE_CLICK * context.ads_before),
        "category_x_age": CATEGORY_AGE_AFFINITY.get((creative.category, viewer.age_band), 0.0),
        "device_x_daypart": DEVICE_DAYPART_CLICK.get((context.device, part), 0.0),
        "genre_x_category": _genre_affinity(title, creative.category),
        "gender_x_category": GENDER_CATEGORY_CLICK.get((viewer.gender, creative.category), 0.0),
        "long_ad_late_in_pod": (
            LONG_AD_LATE_CLICK if creative.duration_seconds >= 60 and context.position >= 3 else 0.0
        ),
        "viewer": _normal(VIEWER_CLICK_SD, "click", "viewer", viewer.external_id),
        "creative": _spread(CREATIVE_CLICK_SPREAD, "click", "creative", creative.id),
        "advertiser": _spread(
            ADVERTISER_CLICK_SPREAD, "click", "advertiser", creative.advertiser_id
        ),
    }


def completion_terms(
    *,
    viewer: ViewerProfile,
    title: TitleProfile,
    creative: CreativeProfile,
    context: AdContext,
) -> dict[str, float]:
    """The completion logit's terms by name (documented in the module docstring)."""
    interest = CATEGORY_AGE_AFFINITY.get(
        (creative.category, viewer.age_band), 0.0
    ) + _genre_affinity(title, creative.category)
    return {
        "base": COMPLETION_BASE,
        "duration": DURATION_COMPLETION.get(creative.duration_seconds, 0.0),
        "device": DEVICE_COMPLETION.get(context.device, 0.0),
        "position": POSITION_COMPLETION * (context.position - 1),
        "break": PRE_ROLL_COMPLETION if context.break_offset_seconds == 0 else 0.0,
        "daypart": LATE_NIGHT_COMPLETION if daypart(context.local_hour) == "late_night" else 0.0,
        "age_band": AGE_BAND_COMPLETION.get(viewer.age_band, 0.0),
        "interest": INTEREST_COMPLETION * interest,
        "fatigue": max(FATIGUE_COMPLETION_FLOOR, FATIGUE_COMPLETION * context.ads_before),
        "viewer": _normal(VIEWER_COMPLETION_SD, "complete", "viewer", viewer.external_id),
    }


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


def click_probability(
    *,
    viewer: ViewerProfile,
    title: TitleProfile,
    creative: CreativeProfile,
    context: AdContext,
) -> float:
    """The true probability that this viewer clicks this ad, here and now."""
    terms = click_terms(viewer=viewer, title=title, creative=creative, context=context)
    return _sigmoid(sum(terms.values()))


def click_probabilities(
    *,
    viewer: ViewerProfile,
    title: TitleProfile,
    creative: CreativeProfile,
    context: AdContext,
) -> tuple[float, float, float]:
    """(the true click probability; the same without the viewer's hidden propensity, the best
    any model can rank by; the same without fatigue): the last two let a bench split a model's
    gap to the truth into what no feature shows and what fatigue is worth."""
    terms = click_terms(viewer=viewer, title=title, creative=creative, context=context)
    logit = sum(terms.values())
    return (
        _sigmoid(logit),
        _sigmoid(logit - terms["viewer"]),
        _sigmoid(logit - terms["fatigue"]),
    )


def completion_probability(
    *,
    viewer: ViewerProfile,
    title: TitleProfile,
    creative: CreativeProfile,
    context: AdContext,
) -> float:
    """The true probability that this viewer watches this ad to its end."""
    terms = completion_terms(viewer=viewer, title=title, creative=creative, context=context)
    return _sigmoid(sum(terms.values()))
