"""The tenant (an advertiser account) and its demand: campaigns, line items, creatives.

Every tenant-owned row carries ``advertiser`` itself, also where it could be derived, so that
scoping is always one ``filter(advertiser=...)`` (DESIGN.md, "Tenancy").
"""

import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.utils import timezone

from ads.delivery.tokens import CLOCK_SKEW, TOKEN_TTL
from catalog.models import AgeBand, Device, Genre, MaturityRating, Region, Title

TIMEZONES = sorted(zoneinfo.available_timezones())
# A code of its own: Django replaces messages of URLField's own code ("invalid") with its
# generic "Enter a valid URL.", which would hide the hint.
http_url = URLValidator(
    schemes=["http", "https"], message="Enter an http:// or https:// URL.", code="invalid_scheme"
)
positive_money = MinValueValidator(Decimal("0.01"), message="Must be greater than zero.")


class Daypart(models.TextChoices):
    """Parts of the day, in the advertiser's time zone."""

    MORNING = "morning", "Morning (06–12)"
    DAYTIME = "daytime", "Daytime (12–17)"
    PRIMETIME = "primetime", "Prime time (17–23)"
    LATE_NIGHT = "late_night", "Late night (23–06)"


DAYPART_HOURS: dict[str, range] = {
    Daypart.MORNING: range(6, 12),
    Daypart.DAYTIME: range(12, 17),
    Daypart.PRIMETIME: range(17, 23),
    Daypart.LATE_NIGHT: range(-1, 6),  # 23:00 is folded to -1 below
}


def daypart_at(local_time: datetime) -> str:
    hour = local_time.hour if local_time.hour != 23 else -1
    return next(part for part, hours in DAYPART_HOURS.items() if hour in hours)


class Advertiser(models.Model):
    """An advertiser account: the tenant."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(
        max_length=64, default="UTC", choices=[(tz, tz) for tz in TIMEZONES]
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 code, e.g. USD.")],
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="advertisers"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MANAGER = "manager", "Manager"
        ANALYST = "analyst", "Analyst (read-only)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ANALYST)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.advertiser} ({self.role})"

    @property
    def can_edit(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.MANAGER)


class DeliveryStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class TenantModel(models.Model):
    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name  # type: ignore[attr-defined]

    @property
    def is_archived(self) -> bool:
        return self.status == DeliveryStatus.ARCHIVED


class Campaign(TenantModel):
    class Objective(models.TextChoices):
        AWARENESS = "awareness", "Awareness (impressions)"
        CONSIDERATION = "consideration", "Consideration (completed views)"
        CONVERSION = "conversion", "Conversion (clicks)"

    name = models.CharField(max_length=120)
    objective = models.CharField(
        max_length=16, choices=Objective.choices, default=Objective.AWARENESS
    )
    start_date = models.DateField()
    end_date = models.DateField(
        null=True, blank=True, help_text="Leave empty to run until stopped."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["advertiser", "status"])]

    def clean(self) -> None:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The end date must be on or after the start date."})


class LineItem(TenantModel):
    """A flight of a campaign: when, at what price, to whom, how fast."""

    class Pricing(models.TextChoices):
        CPM = "cpm", "CPM (per thousand impressions)"
        CPC = "cpc", "CPC (per click)"

    class Pacing(models.TextChoices):
        EVEN = "even", "Even (spread the daily budget over the day)"
        ASAP = "asap", "As fast as possible"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="line_items")
    name = models.CharField(max_length=120)
    start_at = models.DateTimeField()
    end_at = models.DateTimeField(null=True, blank=True)
    pricing = models.CharField(max_length=3, choices=Pricing.choices, default=Pricing.CPM)
    bid = models.DecimalField(max_digits=10, decimal_places=4, validators=[positive_money])
    daily_budget = models.DecimalField(max_digits=12, decimal_places=2, validators=[positive_money])
    lifetime_budget = models.DecimalField(
        max_digits=14, decimal_places=2, validators=[positive_money]
    )
    pacing = models.CharField(max_length=4, choices=Pacing.choices, default=Pacing.EVEN)

    # Frequency caps: impressions of this line item per viewer; empty means no cap.
    frequency_cap_hour = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    frequency_cap_day = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    frequency_cap_lifetime = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )

    # Targeting: an empty list or set means "everyone".
    target_genres = models.ManyToManyField(Genre, blank=True, related_name="+")
    target_maturity_ratings = models.JSONField(default=list, blank=True)
    target_regions = models.JSONField(default=list, blank=True)
    target_devices = models.JSONField(default=list, blank=True)
    target_age_bands = models.JSONField(default=list, blank=True)
    target_dayparts = models.JSONField(default=list, blank=True)
    include_titles = models.ManyToManyField(Title, blank=True, related_name="+")
    exclude_titles = models.ManyToManyField(Title, blank=True, related_name="+")

    # The allowed values of each list-valued targeting field.
    TARGETING_CHOICES = {
        "target_maturity_ratings": MaturityRating,
        "target_regions": Region,
        "target_devices": Device,
        "target_age_bands": AgeBand,
        "target_dayparts": Daypart,
    }
    # Targeting by related rows (many-to-many): set after the line item is saved.
    TARGETING_RELATIONS = ("target_genres", "include_titles", "exclude_titles")
    # What an advertiser may set on a line item, through the web form, the API or a service
    # (its campaign and advertiser are fixed at creation).
    EDITABLE_FIELDS = (
        "name",
        "start_at",
        "end_at",
        "pricing",
        "bid",
        "daily_budget",
        "lifetime_budget",
        "pacing",
        "frequency_cap_hour",
        "frequency_cap_day",
        "frequency_cap_lifetime",
        *TARGETING_CHOICES,
        *TARGETING_RELATIONS,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["advertiser", "status"])]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            errors["end_at"] = "The end must be after the start."
        if self.daily_budget and self.lifetime_budget and self.daily_budget > self.lifetime_budget:
            errors["daily_budget"] = "The daily budget cannot exceed the lifetime budget."
        caps = [
            ("frequency_cap_hour", self.frequency_cap_hour),
            ("frequency_cap_day", self.frequency_cap_day),
            ("frequency_cap_lifetime", self.frequency_cap_lifetime),
        ]
        set_caps = [(name, cap) for name, cap in caps if cap is not None]
        for (_, shorter), (longer_name, longer) in zip(set_caps, set_caps[1:], strict=False):
            if longer < shorter:
                errors[longer_name] = (
                    "A cap over a longer period cannot be lower than a shorter one's."
                )
        for field, choices in self.TARGETING_CHOICES.items():
            values = getattr(self, field)
            if not isinstance(values, list):
                errors[field] = "Must be a list."
                continue
            unknown = sorted(set(map(str, values)) - set(choices.values))
            if unknown:
                errors[field] = f"Unknown value(s): {', '.join(unknown)}."
        campaign = self._campaign_or_none()
        if campaign is not None:
            if self.advertiser_id and campaign.advertiser_id != self.advertiser_id:
                errors["campaign"] = "The campaign belongs to another advertiser."
            elif self.start_at and campaign.start_date:
                tz = campaign.advertiser.tzinfo
                if timezone.localtime(self.start_at, tz).date() < campaign.start_date:
                    errors["start_at"] = "The line item cannot start before its campaign."
                if (
                    self.end_at
                    and campaign.end_date
                    and timezone.localtime(self.end_at, tz).date() > campaign.end_date
                ):
                    errors["end_at"] = "The line item cannot end after its campaign."
        if errors:
            raise ValidationError(errors)

    def _campaign_or_none(self) -> Campaign | None:
        try:
            return self.campaign
        except Campaign.DoesNotExist:
            return None


class Creative(TenantModel):
    class Duration(models.IntegerChoices):
        SHORT = 15, "15 s"
        STANDARD = 30, "30 s"
        LONG = 60, "60 s"

    class Category(models.TextChoices):
        """For competitive separation: two ads of one category never share a pod."""

        AUTOMOTIVE = "automotive", "Automotive"
        BEVERAGES = "beverages", "Beverages"
        FAST_FOOD = "fast_food", "Fast food"
        FINANCE = "finance", "Finance"
        INSURANCE = "insurance", "Insurance"
        RETAIL = "retail", "Retail"
        TECHNOLOGY = "technology", "Technology"
        TELECOM = "telecom", "Telecom"
        TRAVEL = "travel", "Travel"
        ENTERTAINMENT = "entertainment", "Entertainment"
        HEALTH = "health", "Health"
        HOUSEHOLD = "household", "Household goods"

    line_item = models.ForeignKey(LineItem, on_delete=models.CASCADE, related_name="creatives")
    name = models.CharField(max_length=120)
    duration_seconds = models.PositiveSmallIntegerField(
        choices=Duration.choices, default=Duration.STANDARD
    )
    media_url = models.URLField(max_length=500, validators=[http_url])
    click_url = models.URLField("click-through URL", max_length=500, validators=[http_url])
    category = models.CharField(max_length=16, choices=Category.choices)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["advertiser", "status"])]

    def clean(self) -> None:
        try:
            line_item = self.line_item
        except LineItem.DoesNotExist:
            return
        if self.advertiser_id and line_item.advertiser_id != self.advertiser_id:
            raise ValidationError({"line_item": "The line item belongs to another advertiser."})


class PlatformKey(models.Model):
    """An API key of the platform's own integrations (a player, an SSAI server): not tied to an
    advertiser. Only a hash is stored; the key itself is shown once, when staff create it."""

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Player(models.Model):
    """A player integration's public id, named in its VAST and VMAP tags (`player=`). Tags are
    fetched by viewers' devices, so the id is no secret: it identifies the integration for
    its rate limit and lets staff switch it off; the signed tracking links stay the proof
    that an event is genuine."""

    public_id = models.SlugField(
        max_length=64, unique=True, help_text="Named in the tags: player=<public id>."
    )
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(
        default=True, help_text="An inactive player's tags answer no ads."
    )
    requests_per_minute = models.PositiveIntegerField(
        default=60_000,
        validators=[MinValueValidator(1)],
        help_text="Ad requests (VAST and VMAP) this player may make per minute, all viewers.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["public_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class AccountKey(models.Model):
    """An API key of one advertiser account, created by its owner for an integration (a
    reporting tool, a campaign manager). Only a hash is stored; the key is shown once. Revoked
    keys are kept (who made them, when they were last used) and stop working at once."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    scope = models.CharField(max_length=5, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.WRITE


class AdEventQuerySet(models.QuerySet["AdEvent"]):
    def occurred_between(self, start: datetime | None, end: datetime | None) -> "AdEventQuerySet":
        """Events that occurred in [start, end) (None: unbounded), with the bounds on
        `decided_at` that follow from ingestion's rule (an event occurs between CLOCK_SKEW
        before its decision and TOKEN_TTL + CLOCK_SKEW after), so that PostgreSQL reads only
        the partitions that can hold them."""
        events = self
        if start is not None:
            events = events.filter(occurred_at__gte=start, decided_at__gte=decided_from(start))
        if end is not None:
            events = events.filter(occurred_at__lt=end, decided_at__lt=decided_before(end))
        return events


# How long after its decision an event can occur (ingestion rejects later times): an event
# that occurred at t was decided in [t - EVENT_AFTER_DECISION, t + CLOCK_SKEW].
EVENT_AFTER_DECISION = TOKEN_TTL + CLOCK_SKEW


def decided_from(occurred_from: datetime) -> datetime:
    """The earliest decision of an event that occurred at `occurred_from` or later."""
    return occurred_from - EVENT_AFTER_DECISION


def decided_before(occurred_before: datetime) -> datetime:
    """A time every decision of an event that occurred before `occurred_before` precedes."""
    return occurred_before + CLOCK_SKEW + timedelta(seconds=1)


class AdEvent(models.Model):
    """One counted ad event. The table is the truth for spend, caps and reports; the counters
    are a fast copy that can be rebuilt from it.

    The append-only fact table, written in batches of up to 1,000 rows. On PostgreSQL it is
    partitioned by day on `decided_at` (migration 0006, `ads.services.partitions`): the time of
    the decision whose token the event carries, the same for every report of one event, so a
    duplicate always meets its original in one partition and the unique (event_id, decided_at)
    keeps it out. There the primary key is (id, decided_at), as a partitioned table's keys must
    hold its partition key; Django still treats `id` as the key, which stays unique (one
    sequence). Reads by event time go through `AdEvent.objects.occurred_between`, which adds the
    `decided_at` bounds that let PostgreSQL read only the partitions they need. Its foreign keys
    have no database constraint (``db_constraint=False``), because the
    six deferred constraint triggers cost more than half of each insert. Ingestion checks the
    references itself (``ads.services.events._with_known_references``), and deleting a
    referenced row still deletes its events (``on_delete`` runs in Django, not the database).
    Advertiser and line item need no index of their own: the (advertiser, occurred_at) and
    (line_item, occurred_at) indexes serve those lookups."""

    class Type(models.TextChoices):
        IMPRESSION = "impression", "Impression"
        FIRST_QUARTILE = "first_quartile", "First quartile"
        MIDPOINT = "midpoint", "Midpoint"
        THIRD_QUARTILE = "third_quartile", "Third quartile"
        COMPLETE = "complete", "Complete"
        CLICK = "click", "Click"

    advertiser = models.ForeignKey(
        Advertiser,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    line_item = models.ForeignKey(
        LineItem,
        on_delete=models.CASCADE,
        related_name="events",
        db_constraint=False,
        db_index=False,
    )
    creative = models.ForeignKey(
        Creative, on_delete=models.CASCADE, related_name="events", db_constraint=False
    )
    viewer = models.ForeignKey(
        "catalog.Viewer", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    title = models.ForeignKey(
        "catalog.Title", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    ad_break = models.ForeignKey(
        "catalog.AdBreak",
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        db_constraint=False,
    )
    event_type = models.CharField(max_length=16, choices=Type.choices)
    # Idempotency: one event of a type per decision and creative, whichever way it arrives
    # (unique by a constraint, not unique=True, which adds a second, LIKE index on PostgreSQL).
    event_id = models.CharField(max_length=80)
    client_event_id = models.CharField(max_length=80, blank=True, default="")
    decision_id = models.UUIDField()
    pod_position = models.PositiveSmallIntegerField()
    # The request's context, which may differ from the viewer profile's usual device and region.
    device = models.CharField(max_length=10, choices=Device.choices)
    region = models.CharField(max_length=16, choices=Region.choices)
    occurred_at = models.DateTimeField()
    # When the decision was made (its token's issue time): the partition key on PostgreSQL.
    decided_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # What the event cost the advertiser, in micros of its currency (CPM: the impression;
    # CPC: the click; zero otherwise).
    cost_micros = models.BigIntegerField(default=0)

    objects = AdEventQuerySet.as_manager()

    class Meta:
        # The event's decision time is part of its key: on PostgreSQL a unique key must hold
        # the partition key, and every report of one event carries the same decision time.
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "decided_at"], name="adevent_unique_event_id_decided_at"
            )
        ]
        indexes = [
            models.Index(fields=["advertiser", "occurred_at"]),
            models.Index(fields=["line_item", "occurred_at"]),
            models.Index(fields=["decision_id", "creative"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} of creative {self.creative_id} ({self.event_id})"


class AuditEntry(models.Model):
    """One change to an account's demand or keys: who made it (a user, or an account key),
    through which path (the pages, the API, admin, or the platform itself: seed and demo
    commands), when, and what changed, field by field ({"bid": ["2.50", "3.00"]}).

    Our own small table rather than django-simple-history or django-auditlog: those record
    from model signals, with a user as the only actor and no tenant column, while here the
    services record (the one way every path goes through, ads.services.audit), the actor may
    be an API key, the path is part of the entry, and every row carries `advertiser_id` like
    every tenant-owned row, so an account's history is one filter away and never another's.
    Entries are only added, never changed (admin shows them read-only)."""

    class ObjectType(models.TextChoices):
        CAMPAIGN = "campaign", "Campaign"
        LINE_ITEM = "line_item", "Line item"
        CREATIVE = "creative", "Creative"
        ACCOUNT_KEY = "account_key", "API key"

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Changed"
        PAUSE = "pause", "Paused"
        RESUME = "resume", "Resumed"
        ARCHIVE = "archive", "Archived"
        REVOKE = "revoke", "Revoked"

    class Path(models.TextChoices):
        PAGE = "page", "Page"
        API = "api", "API key"
        ADMIN = "admin", "Admin"
        SYSTEM = "system", "Platform"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="+")
    object_type = models.CharField(max_length=12, choices=ObjectType.choices)
    object_id = models.BigIntegerField()
    object_name = models.CharField(max_length=200, help_text="Its name at the time.")
    action = models.CharField(max_length=8, choices=Action.choices)
    changes = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    key = models.ForeignKey(
        AccountKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    path = models.CharField(max_length=6, choices=Path.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(
                fields=["advertiser", "object_type", "object_id", "-at"], name="audit_object"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.get_object_type_display()} “{self.object_name}”"

    @property
    def change_lines(self) -> list[str]:
        """What changed, a line a field: "bid: 2.5 → 3", "status: active → paused". A
        creation lists nothing: the object's page shows what it is now."""
        if self.action == self.Action.CREATE:
            return []
        return [
            f"{field.replace('_', ' ')}: {_shown(old)} → {_shown(new)}"
            for field, (old, new) in self.changes.items()
        ]

    @property
    def actor(self) -> str:
        """Who, as a person reads it: a username, an API key's name, or the platform."""
        if self.key is not None:
            return f"API key “{self.key.name}”"
        if self.user is not None:
            return self.user.get_username()
        return "Interlude" if self.path == self.Path.SYSTEM else "a deleted user or key"


def _shown(value: object) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


class CounterBacklog(models.Model):
    """The counter effects of one batch of stored events, written in the same transaction as
    the events and deleted once the counters have them. An entry outlives its request when the
    counters could not be reached (Redis down, or being healed): the refresher of every server
    applies it later (`ads.services.counters_backlog_drain`), and a heal that rebuilds the
    counters from the event table deletes the entries its rebuild already counted. Each entry
    is applied at most once: the store records its id in the same step as the bumps."""

    # [[key, amount, ttl or null], ...]: the bumps, aggregated per key.
    bumps = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"counter backlog {self.pk}"


class EventTotal(models.Model):
    """The events of one creative and type, ever, as far as `EventTotalMark.covered_through`
    (events with ids up to it): the part of lifetime spend and click-through that a counter rebuild
    reads here instead of summing the whole event table (`ads.services.totals`). Kept by the
    beat task `event_totals_advance_task`; outlives the partitions that retention drops, so a
    lifetime budget is not forgotten with its old events."""

    creative = models.ForeignKey(
        Creative, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    line_item = models.ForeignKey(
        LineItem,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    event_type = models.CharField(max_length=16, choices=AdEvent.Type.choices)
    events = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creative", "event_type"], name="eventtotal_unique_grain"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} of creative {self.creative_id}"


class EventDayTotal(models.Model):
    """The events of one creative and type that occurred on one day in its account's time zone
    (`local_day`) and one UTC day, as far as `EventTotalMark.covered_through`: the part of the
    daily spend and the live totals a counter rebuild reads here. Only the last days are kept
    (`ads.services.totals.DAYS_KEPT`)."""

    advertiser = models.ForeignKey(
        Advertiser,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    line_item = models.ForeignKey(
        LineItem,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    creative = models.ForeignKey(
        Creative, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    event_type = models.CharField(max_length=16, choices=AdEvent.Type.choices)
    local_day = models.DateField()
    utc_day = models.DateField(db_index=True)
    events = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["creative", "event_type", "local_day", "utc_day"],
                name="eventdaytotal_unique_grain",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} of creative {self.creative_id} on {self.local_day}"


class EventTotalMark(models.Model):
    """One row: the event totals hold every event with an id up to `covered_through` (None:
    nothing summed yet), and their day rows are complete from `days_from` on; `seen_through` is
    the largest id stored at `seen_at`, summed by the first run SEAL_MARGIN later
    (`ads.services.totals`)."""

    covered_through = models.BigIntegerField(null=True)
    seen_through = models.BigIntegerField()
    seen_at = models.DateTimeField()
    days_from = models.DateField(null=True)

    def __str__(self) -> str:
        return f"event totals through id {self.covered_through}"
