"""Counter keys. Each line item's keys share the hash tag `{li:ID}` (one Redis Cluster slot)."""

from datetime import date, datetime

DAY_TTL = 3 * 86400
HOUR_TTL = 2 * 3600
LIFETIME_TTL = 400 * 86400


def _li(line_item_id: int) -> str:
    return f"il:{{li:{line_item_id}}}"


def reserved_day(line_item_id: int, day: date) -> str:
    """Money reserved by decisions on the account's local `day` (budget and pacing)."""
    return f"{_li(line_item_id)}:res:{day:%Y%m%d}"


def reserved_lifetime(line_item_id: int) -> str:
    return f"{_li(line_item_id)}:res:life"


def spent_day(line_item_id: int, day: date) -> str:
    """Money spent by counted events (impressions for CPM, clicks for CPC)."""
    return f"{_li(line_item_id)}:spent:{day:%Y%m%d}"


def spent_lifetime(line_item_id: int) -> str:
    return f"{_li(line_item_id)}:spent:life"


def cap_hour(line_item_id: int, viewer_id: int, at: datetime) -> str:
    return f"{_li(line_item_id)}:cap:{viewer_id}:h{at:%Y%m%d%H}"


def cap_day(line_item_id: int, viewer_id: int, day: date) -> str:
    return f"{_li(line_item_id)}:cap:{viewer_id}:d{day:%Y%m%d}"


def cap_lifetime(line_item_id: int, viewer_id: int) -> str:
    return f"{_li(line_item_id)}:cap:{viewer_id}:life"


def pacing_throttle(line_item_id: int) -> str:
    """The even-pacing controller's pass probability, in millionths."""
    return f"{_li(line_item_id)}:pace:p"


def pacing_demand(line_item_id: int) -> str:
    """The controller's estimate of unthrottled spend per minute, in micros."""
    return f"{_li(line_item_id)}:pace:demand"


def pacing_last_reserved(line_item_id: int) -> str:
    return f"{_li(line_item_id)}:pace:last"


def pacing_last_tick(line_item_id: int) -> str:
    """The minute (since the epoch) of the controller's last step for this line item."""
    return f"{_li(line_item_id)}:pace:tick"


def pacing_tick(minute: datetime) -> str:
    """Claimed by the one process that runs the controller for this minute."""
    return f"il:pace:tick:{minute:%Y%m%d%H%M}"


def creative_impressions(creative_id: int) -> str:
    return f"il:cr:{creative_id}:imp"


def creative_clicks(creative_id: int) -> str:
    return f"il:cr:{creative_id}:clk"


def category_impressions(category: str) -> str:
    return f"il:cat:{category}:imp"


def category_clicks(category: str) -> str:
    return f"il:cat:{category}:clk"


def invalid_events(reason: str, day: date) -> str:
    return f"il:invalid:{reason}:{day:%Y%m%d}"


def exploration(day: date) -> str:
    """Decisions whose ranking sampled exploratory pCTRs, today (UTC)."""
    return f"il:explore:{day:%Y%m%d}"


def decisions(day: date) -> str:
    """Decisions made on a UTC day; `unfilled` those that returned no ad (fill rate)."""
    return f"il:decisions:{day:%Y%m%d}"


def unfilled(day: date) -> str:
    return f"il:unfilled:{day:%Y%m%d}"


def index_version() -> str:
    return "il:index:version"


LIVE_METRICS = ("impressions", "clicks", "completes", "spend")


def live(advertiser_id: int, day: date, metric: str) -> str:
    """An account's running total for its local `day`, for the live dashboard."""
    return f"il:live:{advertiser_id}:{day:%Y%m%d}:{metric}"


def live_platform(day: date, metric: str) -> str:
    """The platform's running total for a UTC `day`, for the executive dashboard."""
    return f"il:live:all:{day:%Y%m%d}:{metric}"


def live_throttle(advertiser_id: int) -> str:
    return f"il:live:{advertiser_id}:throttle"


def latency(at: datetime, bucket: int) -> str:
    """Decisions of the minute of `at` (UTC) whose time fell in latency bucket `bucket`."""
    return f"il:latency:{at:%Y%m%d%H%M}:{bucket}"
