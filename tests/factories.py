import uuid
from datetime import UTC, date, timedelta
from decimal import Decimal

import factory
from django.contrib.auth.models import User
from django.utils import timezone

from ads.models import AdEvent, Advertiser, Campaign, Creative, LineItem, Membership, Player
from ads.services import event_partitions_make
from catalog.models import AdBreak, AgeBand, Device, Genre, Region, Title, Viewer

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(user, create, extracted, **kwargs):  # noqa: N805 - factory_boy's signature
        if create:
            user.save()


class GenreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Genre
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Genre {n}")
    slug = factory.LazyAttribute(lambda genre: genre.name.lower().replace(" ", "-"))


class TitleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Title

    external_id = factory.Sequence(lambda n: f"test:{n}")
    name = factory.Sequence(lambda n: f"Title {n}")
    year = 2001
    duration_seconds = 5400


class AdBreakFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AdBreak

    title = factory.SubFactory(TitleFactory)
    offset_seconds = 600
    max_pod_duration_seconds = 90


class ViewerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Viewer

    external_id = factory.Sequence(lambda n: f"viewer-{n}")
    age_band = AgeBand.AGE_25_34
    region = Region.WEST
    device = Device.CTV


class AdvertiserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Advertiser

    name = factory.Sequence(lambda n: f"Advertiser {n}")
    slug = factory.Sequence(lambda n: f"advertiser-{n}")
    timezone = "America/New_York"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    advertiser = factory.SubFactory(AdvertiserFactory)
    role = Membership.Role.OWNER


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    advertiser = factory.SubFactory(AdvertiserFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    start_date = factory.LazyFunction(lambda: date.today() - timedelta(days=7))


class LineItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LineItem

    campaign = factory.SubFactory(CampaignFactory)
    advertiser = factory.SelfAttribute("campaign.advertiser")
    name = factory.Sequence(lambda n: f"Line item {n}")
    start_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    bid = Decimal("12.5000")
    daily_budget = Decimal("500.00")
    lifetime_budget = Decimal("5000.00")


class CreativeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Creative

    line_item = factory.SubFactory(LineItemFactory)
    advertiser = factory.SelfAttribute("line_item.advertiser")
    name = factory.Sequence(lambda n: f"Creative {n}")
    media_url = "https://cdn.example.com/ads/spot.mp4"
    click_url = "https://brand.example.com/landing"
    category = Creative.Category.BEVERAGES


class PlayerFactory(factory.django.DjangoModelFactory):
    """A public player id, as staff set one in admin for a VAST/VMAP integration."""

    class Meta:
        model = Player
        django_get_or_create = ("public_id",)

    public_id = factory.Sequence(lambda n: f"player-{n}")
    name = factory.LazyAttribute(lambda player: f"Player {player.public_id}")


class AdEventFactory(factory.django.DjangoModelFactory):
    """A stored event, as if counted through a tracking link (tests of what reads the table)."""

    class Meta:
        model = AdEvent

    creative = factory.SubFactory(CreativeFactory)
    line_item = factory.SelfAttribute("creative.line_item")
    advertiser = factory.SelfAttribute("creative.advertiser")
    viewer = factory.SubFactory(ViewerFactory)
    title = factory.SubFactory(TitleFactory)
    event_type = "impression"
    event_id = factory.Sequence(lambda n: f"test-event-{n}")
    decision_id = factory.LazyFunction(uuid.uuid4)
    pod_position = 1
    device = Device.CTV
    region = Region.WEST
    occurred_at = factory.LazyFunction(timezone.now)
    decided_at = factory.SelfAttribute("occurred_at")
    cost_micros = 0

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """On PostgreSQL, the day's partition first (a test's day may be any day)."""
        day = kwargs["decided_at"].astimezone(UTC).date()
        event_partitions_make(first_day=day, last_day=day)
        return super()._create(model_class, *args, **kwargs)
