"""Counter keys, and how long each lives. Every key string of the delivery state is built
here and nowhere else: the engine, the event path, the rebuild and the dashboards call these
functions, and `lifetime(key_function)` says how long a key of that kind is kept (None: no
expiry). Each line item's keys share the hash tag `{li:ID}` (one Redis Cluster slot)."""

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

PREFIX = "il:"  # every key starts with it: `counters().delete_prefix(PREFIX)` forgets them all
DAY_TTL = 3 * 86400
HOUR_TTL = 2 * 3600
LIFETIME_TTL = 400 * 86400
PACING_TICK_TTL = 120
LATENCY_TTL = 3 * 3600

KeyFunction = TypeVar("KeyFunction", bound=Callable[..., str])
_LIFETIMES: dict[Callable[..., str], int | None] = {}


def _lives(seconds: int | None) -> Callable[[KeyFunction], KeyFunction]:
    def mark(key_function: KeyFunction) -> KeyFunction:
        _LIFETIMES[key_function] = seconds
        return key_function

    return mark


def lifetime(key_function: Callable[..., str]) -> int | None:
    """Seconds a key made by `key_function` is kept (None: no expiry)."""
    return _LIFETIMES[key_function]


def _li(line_item_id: int) -> str:
    return f"{PREFIX}{{li:{line_item_id}}}"


# A date's, an hour's or a minute's part of a key, as f"{day:%Y%m%d}", f"{at:%Y%m%d%H}" and
# f"{at:%Y%m%d%H%M}" write it, from the integers: strftime builds a time tuple first and costs
# three times as much, and a decision formats a few of these for every slot it reserves.
def _ymd(day: date) -> str:
    return f"{day.year}{day.month:02d}{day.day:02d}"


def _ymdh(at: datetime) -> str:
    return f"{at.year}{at.month:02d}{at.day:02d}{at.hour:02d}"


def _ymdhm(at: datetime) -> str:
    return f"{at.year}{at.month:02d}{at.day:02d}{at.hour:02d}{at.minute:02d}"


@_lives(DAY_TTL)
def reserved_day(line_item_id: int, day: date) -> str:
    """Money reserved by decisions on the account's local `day` (budget and pacing)."""
    return f"{_li(line_item_id)}:res:{_ymd(day)}"


@_lives(LIFETIME_TTL)
def reserved_lifetime(line_item_id: int) -> str:
    return f"{_li(line_item_id)}:res:life"


@_lives(DAY_TTL)
def spent_day(line_item_id: int, day: date) -> str:
    """Money spent by counted events (impressions for CPM, clicks for CPC)."""
    return f"{_li(line_item_id)}:spent:{_ymd(day)}"


@_lives(LIFETIME_TTL)
def spent_lifetime(line_item_id: int) -> str:
    return f"{_li(line_item_id)}:spent:life"


@_lives(HOUR_TTL)
def cap_hour(line_item_id: int, viewer_id: int, at: datetime) -> str:
    return f"{_li(line_item_id)}:cap:{viewer_id}:h{_ymdh(at)}"


@_lives(DAY_TTL)
def cap_day(line_item_id: int, viewer_id: int, day: date) -> str:
    return f"{_li(line_item_id)}:cap:{viewer_id}:d{_ymd(day)}"


@_lives(LIFETIME_TTL)
def cap_lifetime(line_item_id: int, viewer_id: int) -> str:
    return f"{_li(line_item_id)}:cap:{viewer_id}:life"


@_lives(DAY_TTL)
def pacing_throttle(line_item_id: int) -> str:
    """The even-pacing controller's pass probability, in millionths."""
    return f"{_li(line_item_id)}:pace:p"


@_lives(DAY_TTL)
def pacing_demand(line_item_id: int) -> str:
    """The controller's estimate of unthrottled spend per minute, in micros."""
    return f"{_li(line_item_id)}:pace:demand"


@_lives(DAY_TTL)
def pacing_last_reserved(line_item_id: int) -> str:
    return f"{_li(line_item_id)}:pace:last"


@_lives(DAY_TTL)
def pacing_last_tick(line_item_id: int) -> str:
    """The minute (since the epoch) of the controller's last step for this line item."""
    return f"{_li(line_item_id)}:pace:tick"


@_lives(PACING_TICK_TTL)
def pacing_tick(minute: datetime) -> str:
    """Claimed by the one process that runs the controller for this minute."""
    return f"{PREFIX}pace:tick:{_ymdhm(minute)}"


# A viewer's impressions per ten-minute bucket live three hours and a bucket (the CTR
# model's fatigue columns read the last 18, ads.learning.features.FATIGUE_BUCKETS).
VIEWER_ADS_TTL = 3 * 3600 + 600


@_lives(VIEWER_ADS_TTL)
def viewer_ads(viewer_id: int, bucket: int) -> str:
    """The viewer's accepted impressions in one ten-minute bucket (Unix time // 600)."""
    return f"{PREFIX}vw:{viewer_id}:ads:{bucket}"


@_lives(None)
def creative_impressions(creative_id: int) -> str:
    return f"{PREFIX}cr:{creative_id}:imp"


@_lives(None)
def creative_clicks(creative_id: int) -> str:
    return f"{PREFIX}cr:{creative_id}:clk"


@_lives(None)
def category_impressions(category: str) -> str:
    return f"{PREFIX}cat:{category}:imp"


@_lives(None)
def category_clicks(category: str) -> str:
    return f"{PREFIX}cat:{category}:clk"


@_lives(DAY_TTL)
def invalid_events(reason: str, day: date) -> str:
    return f"{PREFIX}invalid:{reason}:{_ymd(day)}"


@_lives(DAY_TTL)
def exploration(day: date) -> str:
    """Decisions whose ranking sampled exploratory pCTRs, today (UTC)."""
    return f"{PREFIX}explore:{_ymd(day)}"


@_lives(DAY_TTL)
def decisions(day: date) -> str:
    """Decisions made on a UTC day; `unfilled` those that returned no ad (fill rate)."""
    return f"{PREFIX}decisions:{_ymd(day)}"


@_lives(DAY_TTL)
def unfilled(day: date) -> str:
    return f"{PREFIX}unfilled:{_ymd(day)}"


@_lives(None)
def epoch() -> str:
    """Present while the counters are known: set by the heal that rebuilt them from the event
    table, gone when the store lost its state (a Redis restarted empty, a flushed database)."""
    return f"{PREFIX}epoch"


HEAL_TTL = 120


@_lives(HEAL_TTL)
def healing() -> str:
    """Claimed by the one process that rebuilds lost counters; while it is held nothing is
    reserved or applied, so the rebuild's values are not overwritten half-way."""
    return f"{PREFIX}healing"


@_lives(HEAL_TTL)
def budgets_known() -> str:
    """Set by a heal once it has written spend, reservations, click-through and live totals
    (every key but a viewer's: `of_viewer`), before it reads the frequency caps: from then
    until the epoch is set, reservations are accepted (holding cap keys, once the viewer's are
    read, `viewer_caps_known`) and backlog entries' effects on those keys applied. Deleted when
    the epoch is set, and by a heal as it starts (one that died between its phases may have
    left it); it lives as long as the healing claim."""
    return f"{PREFIX}known:budgets"


# Long enough for a slow heal's second phase; a marker that expires first only costs the viewer
# one more read of its counts (raised to, never lowered: see `viewer_caps_known`).
VIEWER_KNOWN_TTL = 5 * HEAL_TTL


@_lives(VIEWER_KNOWN_TTL)
def viewer_caps_known(viewer_id: int) -> str:
    """Set, between a heal's phases, once the viewer's frequency caps (every capped line item's
    hour, day and lifetime counts) were read from the event table and raised to in the
    counters: from then a reservation holding that viewer's cap keys is accepted with the
    budgets known. Read only while the epoch is missing; a store that loses its state loses
    these too."""
    return f"{PREFIX}vw:{viewer_id}:caps"


# What `applied` holds: the effects of the entry on every key but the viewers' were counted
# (by a heal's first phase, or applied between its phases); on every key.
APPLIED_BUDGETS = 1
APPLIED_ALL = 2


@_lives(3 * 86400)
def applied(backlog_id: int) -> str:
    """How much of backlog entry `backlog_id`'s counter effects the counters hold
    (APPLIED_BUDGETS, APPLIED_ALL), set in the same step as they are added: applying a part
    again is a no-op (nothing counted twice)."""
    return f"{PREFIX}applied:{backlog_id}"


def of_viewer(key: str) -> bool:
    """A viewer's key (its frequency caps, fatigue buckets and caps' mark): a heal writes these
    in its second phase, every other key in its first (ads.services.recovery)."""
    return key.startswith(f"{PREFIX}vw:") or ":cap:" in key


@_lives(None)
def index_version() -> str:
    return f"{PREFIX}index:version"


LIVE_METRICS = ("impressions", "clicks", "completes", "spend")


@_lives(DAY_TTL)
def live(advertiser_id: int, day: date, metric: str) -> str:
    """An account's running total for its local `day`, for the live dashboard."""
    return f"{PREFIX}live:{advertiser_id}:{_ymd(day)}:{metric}"


@_lives(DAY_TTL)
def live_platform(day: date, metric: str) -> str:
    """The platform's running total for a UTC `day`, for the executive dashboard."""
    return f"{PREFIX}live:all:{_ymd(day)}:{metric}"


@_lives(DAY_TTL)
def live_platform_spend(day: date, currency: str) -> str:
    """The platform's spend in one currency for a UTC `day` (currencies are never added up)."""
    return f"{PREFIX}live:all:{_ymd(day)}:spend:{currency}"


def live_throttle(advertiser_id: int) -> str:
    """Claimed for a moment by each live message to an account (its lifetime is the
    throttle interval the publisher sets)."""
    return f"{PREFIX}live:{advertiser_id}:throttle"


@_lives(LATENCY_TTL)
def latency(at: datetime, bucket: int) -> str:
    """Decisions of the minute of `at` (UTC) whose time fell in latency bucket `bucket`."""
    return f"{PREFIX}latency:{_ymdhm(at)}:{bucket}"


TAG_RATE_TTL = 120


@_lives(TAG_RATE_TTL)
def tag_requests_by_player(public_id: str, minute: int) -> str:
    """Ad tag requests (VAST and VMAP) naming a player in one minute (Unix time // 60)."""
    return f"{PREFIX}tags:{minute}:player:{public_id}"


@_lives(TAG_RATE_TTL)
def tag_requests_by_address(address: str, minute: int) -> str:
    """Ad tag requests from one client address in one minute."""
    return f"{PREFIX}tags:{minute}:addr:{address}"
