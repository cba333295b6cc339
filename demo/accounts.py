"""Three advertiser accounts with users and demand, created through ``ads.services`` so every
rule of the web app applies. Between them the line items use every targeting option."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from ads import services as ads_services
from ads.models import Advertiser, Campaign, Creative, DeliveryStatus, LineItem, Membership
from catalog.models import Genre, MaturityRating, Title

# LineItem.target_<key>, for each key a LineItemPlan's `targeting` may have.
TARGETING_KEYS = frozenset({"maturity_ratings", "regions", "devices", "age_bands", "dayparts"})


@dataclass(frozen=True)
class CreativePlan:
    name: str
    duration_seconds: int
    category: str
    status: str = DeliveryStatus.ACTIVE


@dataclass(frozen=True)
class LineItemPlan:
    name: str
    pricing: str
    bid: str
    daily_budget: str
    lifetime_budget: str
    pacing: str
    creatives: tuple[CreativePlan, ...]
    caps: tuple[int | None, int | None, int | None] = (None, None, None)  # hour, day, lifetime
    targeting: dict[str, list[str]] = field(default_factory=dict)
    genre_slugs: tuple[str, ...] = ()
    include: str = ""  # a TITLE_PICKS key
    exclude: str = ""
    status: str = DeliveryStatus.ACTIVE

    def __post_init__(self) -> None:
        # A typo would otherwise target nobody, in silence.
        unknown = set(self.targeting) - TARGETING_KEYS
        if unknown:
            raise ValueError(f"{self.name}: unknown targeting {', '.join(sorted(unknown))}.")


@dataclass(frozen=True)
class CampaignPlan:
    name: str
    objective: str
    line_items: tuple[LineItemPlan, ...]
    archived: bool = False  # a finished campaign, archived with everything in it


@dataclass(frozen=True)
class AccountPlan:
    name: str
    slug: str
    timezone: str
    currency: str
    website: str
    campaigns: tuple[CampaignPlan, ...]


CPM, CPC = LineItem.Pricing.CPM, LineItem.Pricing.CPC
EVEN, ASAP = LineItem.Pacing.EVEN, LineItem.Pacing.ASAP
Category, Objective = Creative.Category, Campaign.Objective

# Across them, every maturity rating, region, device, age band and daypart is targeted
# somewhere; genres and title lists too; CPM and CPC, even and ASAP, each frequency cap, each
# creative duration; Northwind's financing spot and Lumen's ads share the finance category.
# fmt: off
ACCOUNTS = (
    AccountPlan("Fizzy Cola", "fizzy", "America/New_York", "USD", "fizzycola.example.com", (
        CampaignPlan("Summer Refresh", Objective.AWARENESS, (
            LineItemPlan(
                "Summer Refresh · Prime-time TV", CPM, "18.00", "400", "12000", EVEN,
                (CreativePlan("Summer Refresh 30s", 30, Category.BEVERAGES),
                 CreativePlan("Summer Refresh 15s", 15, Category.BEVERAGES)),
                caps=(None, 3, None),
                targeting={"devices": ["ctv"], "dayparts": ["primetime"],
                           "age_bands": ["18_24", "25_34"], "maturity_ratings": ["PG", "PG-13"],
                           "regions": ["us_northeast", "us_southeast"]},
                genre_slugs=("comedy", "romance"),
            ),
            LineItemPlan(
                "Summer Refresh · Run of network", CPM, "8.00", "150", "4000", EVEN,
                (CreativePlan("Summer Refresh everywhere 30s", 30, Category.BEVERAGES),),
                caps=(None, 4, None),
            ),
            LineItemPlan(
                "Summer Refresh · Mobile mornings", CPM, "11.50", "250", "6000", ASAP,
                (CreativePlan("Morning Fizz 15s", 15, Category.BEVERAGES),),
                caps=(1, 4, None),
                targeting={"devices": ["mobile", "tablet"], "dayparts": ["morning", "daytime"],
                           "age_bands": ["18_24"]},
            ),
        )),
        CampaignPlan("Zero Sugar Launch", Objective.CONSIDERATION, (
            LineItemPlan(
                "Zero Sugar · Action fans", CPC, "0.85", "300", "9000", EVEN,
                (CreativePlan("Zero Sugar story 60s", 60, Category.BEVERAGES),),
                caps=(None, 2, 8),
                targeting={"maturity_ratings": ["PG-13", "R"],
                           "regions": ["us_midwest", "us_south", "us_west"]},
                genre_slugs=("action", "adventure"),
                exclude="horror",
            ),
        )),
        CampaignPlan("Spring Teaser", Objective.AWARENESS, (
            LineItemPlan(
                "Spring Teaser · Run of network", CPM, "9.00", "100", "1500", EVEN,
                (CreativePlan("Spring Teaser 30s", 30, Category.BEVERAGES),),
            ),
        ), archived=True),
    )),
    AccountPlan("Northwind Motors", "northwind", "Europe/Berlin", "EUR", "northwind.example.com", (
        CampaignPlan("Aurora EV Launch", Objective.AWARENESS, (
            LineItemPlan(
                "Aurora EV · Premium TV", CPM, "28.00", "600", "20000", EVEN,
                (CreativePlan("Aurora EV reveal 60s", 60, Category.AUTOMOTIVE),
                 CreativePlan("Aurora EV 30s", 30, Category.AUTOMOTIVE)),
                caps=(1, 2, 6),
                targeting={"devices": ["ctv", "desktop"],
                           "age_bands": ["35_44", "45_54", "55_plus"],
                           "dayparts": ["primetime", "late_night"], "regions": ["intl", "us_west"],
                           "maturity_ratings": ["PG-13", "R", "NC-17"]},
            ),
            LineItemPlan(
                "Aurora EV · Run of network", CPM, "12.00", "200", "5000", EVEN,
                (CreativePlan("Aurora EV everywhere 30s", 30, Category.AUTOMOTIVE),),
                caps=(None, 4, None),
            ),
            LineItemPlan(
                "Aurora EV · Documentary viewers", CPM, "22.00", "200", "5000", ASAP,
                (CreativePlan("Aurora EV range 30s", 30, Category.AUTOMOTIVE),),
                genre_slugs=("documentary", "drama"),
                include="documentary",
            ),
        )),
        CampaignPlan("Spring Service Offer", Objective.CONVERSION, (
            LineItemPlan(
                "Service offer · Click to book", CPC, "1.40", "150", "3000", EVEN,
                (CreativePlan("0% financing 15s", 15, Category.FINANCE),),
                caps=(None, 2, None),
                targeting={"regions": ["us_northeast", "us_midwest"]},
                status=DeliveryStatus.PAUSED,
            ),
        )),
    )),
    AccountPlan("Lumen Bank", "lumen", "America/Los_Angeles", "USD", "lumenbank.example.com", (
        CampaignPlan("First Home", Objective.CONVERSION, (
            LineItemPlan(
                "First Home · Young professionals", CPC, "2.60", "350", "10000", EVEN,
                (CreativePlan("First Home explainer 60s", 60, Category.FINANCE),
                 CreativePlan("First Home 15s", 15, Category.FINANCE),
                 CreativePlan("Home cover 30s", 30, Category.INSURANCE)),
                caps=(None, 2, None),
                targeting={"age_bands": ["25_34", "35_44"], "devices": ["desktop", "mobile"],
                           "dayparts": ["morning", "daytime"],
                           "regions": ["us_west", "us_southeast"]},
            ),
        )),
        CampaignPlan("Everyday Banking", Objective.CONVERSION, (
            LineItemPlan(
                "Everyday Banking · Run of network", CPC, "1.20", "150", "4000", ASAP,
                (CreativePlan("Everyday Banking 30s", 30, Category.FINANCE),
                 CreativePlan("Everyday Banking 15s", 15, Category.FINANCE)),
                caps=(None, 3, None),
            ),
        )),
        CampaignPlan("Little Savers", Objective.CONSIDERATION, (
            LineItemPlan(
                "Little Savers · Family viewing", CPM, "9.50", "120", "3000", ASAP,
                (CreativePlan("Little Savers 30s", 30, Category.FINANCE),
                 CreativePlan("Little Savers 15s", 15, Category.FINANCE,
                              status=DeliveryStatus.PAUSED)),
                caps=(1, None, 5),
                targeting={"maturity_ratings": ["G", "PG"], "age_bands": ["under_18", "35_44"],
                           "devices": ["ctv", "tablet"]},
                genre_slugs=("childrens", "animation"),
                include="family",
            ),
        )),
    )),
)
# fmt: on

TITLE_PICKS: dict[str, dict[str, str]] = {
    "family": {"maturity_rating": MaturityRating.G},
    "horror": {"genres__slug": "horror"},
    "documentary": {"genres__slug": "documentary"},
}
TITLES_PER_PICK = 5
WEB_PLAYER = "interlude-web"  # the public player id of the viewer app's player
# Far enough back for setup_demo's history (14 thin days, then 3 full ones) to give every
# account "last week" and "the week before", which advertisers compare first.
FLIGHTS_BEGAN_DAYS_AGO = 21


@dataclass
class Login:
    username: str
    account: str
    role: str


@dataclass
class AccountsResult:
    logins: list[Login] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)


def demo_accounts_ensure(*, password: str) -> AccountsResult:
    """Create what is missing of: the staff superuser ``admin``; the web player's public id
    ``interlude-web`` (for the VAST and VMAP tags); the three ACCOUNTS, each with
    ``<slug>-owner``, ``<slug>-manager`` and ``<slug>-analyst``; their campaigns, line items
    and creatives (through ``ads.services``, so every rule of the web app applies). Campaigns
    run from FLIGHTS_BEGAN_DAYS_AGO days ago (line items two days later) to six weeks ahead,
    in the advertiser's time zone; the archived
    campaign ran and ended before that. Every user's password is set to `password`, also for
    users that existed, so the logins printed are the logins that work."""
    result = AccountsResult(
        created={
            "advertisers": 0,
            "users": 0,
            "campaigns": 0,
            "line items": 0,
            "creatives": 0,
            "players": 0,
        }
    )
    # One hash for all demo users: hashing is slow on purpose, and these logins are public.
    password_hash = make_password(password)
    with transaction.atomic():
        admin = _user_ensure("admin", password_hash, result)
        if not (admin.is_staff and admin.is_superuser):
            admin.is_staff = admin.is_superuser = True
            admin.save(update_fields=["is_staff", "is_superuser"])
        result.logins.append(Login("admin", "Django admin (staff)", "superuser"))
        # The viewer app's own web player plays its ads through the VAST and VMAP tags.
        _, created = ads_services.player_ensure(public_id=WEB_PLAYER, name="Interlude web player")
        result.created["players"] += created
        for plan in ACCOUNTS:
            advertiser = Advertiser.objects.filter(slug=plan.slug).first()
            if advertiser is None:
                advertiser = ads_services.advertiser_create(
                    name=plan.name, slug=plan.slug, timezone=plan.timezone, currency=plan.currency
                )
                result.created["advertisers"] += 1
            for role in Membership.Role.values:
                user = _user_ensure(f"{plan.slug}-{role}", password_hash, result)
                ads_services.membership_set(advertiser=advertiser, user=user, role=role)
                result.logins.append(Login(user.username, advertiser.name, role))
            for campaign_plan in plan.campaigns:
                _campaign_ensure(advertiser, plan, campaign_plan, result)
    return result


def _user_ensure(username: str, password_hash: str, result: AccountsResult) -> User:
    user, created = User.objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    result.created["users"] += created
    if user.password != password_hash:
        user.password = password_hash
        user.save(update_fields=["password"])
    return user


def _campaign_ensure(
    advertiser: Advertiser, plan: AccountPlan, campaign_plan: CampaignPlan, result: AccountsResult
) -> None:
    today = timezone.localdate(timezone=advertiser.tzinfo)
    campaign = Campaign.objects.filter(advertiser=advertiser, name=campaign_plan.name).first()
    if campaign is not None and campaign.is_archived:
        return
    if campaign_plan.archived:
        start, end = today - timedelta(days=60), today - timedelta(days=20)
    else:
        start, end = today - timedelta(days=FLIGHTS_BEGAN_DAYS_AGO), today + timedelta(days=60)
    if campaign is None:
        campaign = ads_services.campaign_create(
            advertiser=advertiser,
            name=campaign_plan.name,
            objective=campaign_plan.objective,
            start_date=start,
            end_date=end,
        )
        result.created["campaigns"] += 1
    for line_item_plan in campaign_plan.line_items:
        line_item = _line_item_ensure(advertiser, campaign, line_item_plan, start, end, result)
        if line_item.is_archived:  # someone archived it since; it cannot take new creatives
            continue
        for creative_plan in line_item_plan.creatives:
            _creative_ensure(advertiser, plan, campaign, line_item, creative_plan, result)
        if campaign_plan.archived:
            for creative in line_item.creatives.all():
                ads_services.delivery_status_set(item=creative, status=DeliveryStatus.ARCHIVED)
            ads_services.delivery_status_set(item=line_item, status=DeliveryStatus.ARCHIVED)
    if campaign_plan.archived:
        ads_services.delivery_status_set(item=campaign, status=DeliveryStatus.ARCHIVED)


def _line_item_ensure(
    advertiser: Advertiser,
    campaign: Campaign,
    plan: LineItemPlan,
    campaign_start: date,
    campaign_end: date,
    result: AccountsResult,
) -> LineItem:
    line_item = LineItem.objects.filter(advertiser=advertiser, name=plan.name).first()
    if line_item is not None:
        return line_item
    tz = advertiser.tzinfo
    hour_cap, day_cap, lifetime_cap = plan.caps
    line_item = ads_services.line_item_create(
        advertiser=advertiser,
        campaign=campaign,
        name=plan.name,
        start_at=datetime.combine(campaign_start + timedelta(days=2), time(0), tzinfo=tz),
        end_at=datetime.combine(campaign_end - timedelta(days=14), time(0), tzinfo=tz),
        pricing=plan.pricing,
        bid=Decimal(plan.bid),
        daily_budget=Decimal(plan.daily_budget),
        lifetime_budget=Decimal(plan.lifetime_budget),
        pacing=plan.pacing,
        frequency_cap_hour=hour_cap,
        frequency_cap_day=day_cap,
        frequency_cap_lifetime=lifetime_cap,
        target_maturity_ratings=plan.targeting.get("maturity_ratings"),
        target_regions=plan.targeting.get("regions"),
        target_devices=plan.targeting.get("devices"),
        target_age_bands=plan.targeting.get("age_bands"),
        target_dayparts=plan.targeting.get("dayparts"),
        target_genres=Genre.objects.filter(slug__in=plan.genre_slugs),
        include_titles=_titles_picked(plan.include),
        exclude_titles=_titles_picked(plan.exclude),
    )
    if plan.status != DeliveryStatus.ACTIVE:
        ads_services.delivery_status_set(item=line_item, status=plan.status)
    result.created["line items"] += 1
    return line_item


def _creative_ensure(
    advertiser: Advertiser,
    account: AccountPlan,
    campaign: Campaign,
    line_item: LineItem,
    plan: CreativePlan,
    result: AccountsResult,
) -> None:
    if Creative.objects.filter(advertiser=advertiser, name=plan.name).exists():
        return
    creative = ads_services.creative_create(
        advertiser=advertiser,
        line_item=line_item,
        name=plan.name,
        media_url=f"https://cdn.interlude.example/ads/{account.slug}/{slugify(plan.name)}.mp4",
        click_url=f"https://{account.website}/{slugify(campaign.name)}",
        category=plan.category,
        duration_seconds=plan.duration_seconds,
    )
    if plan.status != DeliveryStatus.ACTIVE:
        ads_services.delivery_status_set(item=creative, status=plan.status)
    result.created["creatives"] += 1


def _titles_picked(pick: str) -> list[Title]:
    if not pick:
        return []
    titles = Title.objects.filter(**TITLE_PICKS[pick]).order_by("external_id").distinct()
    return list(titles[:TITLES_PER_PICK])
