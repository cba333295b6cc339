"""Writes of the `ads` app: demand (campaigns, line items, creatives), decisions, ad events,
and the CTR model's training."""

from ads.decisioning.engine import Decision, DecisionRequest, DecisionRequestError, decide
from ads.decisioning.index import index_changed
from ads.decisioning.refresher import server_start
from ads.services.audit import SYSTEM, Actor
from ads.services.caps import viewer_caps_load
from ads.services.demand import (
    advertiser_create,
    campaign_create,
    campaign_update,
    creative_create,
    creative_update,
    delivery_status_set,
    line_item_create,
    line_item_update,
    membership_set,
)
from ads.services.events import (
    EventOutcome,
    IncomingEvent,
    event_track,
    events_record,
    live_group,
    live_publish,
)
from ads.services.keys import (
    account_key_authenticate,
    account_key_create,
    account_key_revoke,
    platform_key_authenticate,
    platform_key_create,
)
from ads.services.partitions import (
    event_partition_days,
    event_partition_drop,
    event_partitions_make,
    event_partitions_make_ahead,
)
from ads.services.players import player_ensure
from ads.services.rebuild import counters_rebuild
from ads.services.recovery import counters_backlog_drain, counters_heal
from ads.services.totals import event_totals_advance

# The CTR trainer imports LightGBM, scikit-learn and pandas: about 1 s of CPU in every process
# that starts Django (a server, `manage.py`, each test process), where it was imported through
# this package. It is imported when one of its functions is first asked for (tasks, commands).
_TRAINING = ("ctr_drift_measure", "ctr_model_train")


def __getattr__(name: str):
    if name in _TRAINING:
        from ads.learning import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SYSTEM",
    "Actor",
    "Decision",
    "DecisionRequest",
    "DecisionRequestError",
    "decide",
    "EventOutcome",
    "IncomingEvent",
    "account_key_authenticate",
    "account_key_create",
    "account_key_revoke",
    "advertiser_create",
    "campaign_create",
    "campaign_update",
    "counters_backlog_drain",
    "counters_heal",
    "counters_rebuild",
    "ctr_drift_measure",
    "ctr_model_train",
    "creative_create",
    "creative_update",
    "delivery_status_set",
    "event_partition_days",
    "event_partition_drop",
    "event_partitions_make",
    "event_partitions_make_ahead",
    "event_totals_advance",
    "event_track",
    "index_changed",
    "events_record",
    "line_item_create",
    "live_group",
    "live_publish",
    "line_item_update",
    "membership_set",
    "platform_key_authenticate",
    "platform_key_create",
    "player_ensure",
    "server_start",
    "viewer_caps_load",
]
