"""The data commands: load_movielens on a hand-written MovieLens (tests/fixtures/ml-mini) and
seed_demo, synthetic and from that fixture."""

import shutil
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from ads.models import (
    Advertiser,
    Campaign,
    Creative,
    DeliveryStatus,
    LineItem,
    Membership,
    Player,
)
from catalog.models import (
    AdBreak,
    AgeBand,
    Device,
    Gender,
    Genre,
    MaturityRating,
    Region,
    Title,
    Viewer,
)
from engagement.models import Rating

pytestmark = pytest.mark.django_db

ML_MINI = Path(__file__).resolve().parents[1] / "fixtures" / "ml-mini"


@pytest.fixture(autouse=True)
def _no_movielens_from_the_environment(monkeypatch):
    """A developer's or CI's MOVIELENS_PATH must not turn the synthetic cases into MovieLens."""
    monkeypatch.delenv("MOVIELENS_PATH", raising=False)


# What ml-mini holds; the ad breaks follow from the hashed durations (80 to 116 minutes here).
ML_MINI_COUNTS = {Title: 10, Genre: 16, AdBreak: 55, Viewer: 8, Rating: 30}
DEMO_PASSWORD = "interlude-demo"


def load(path: Path | str = ML_MINI) -> str:
    out = StringIO()
    call_command("load_movielens", str(path), "--no-progress", stdout=out)
    return out.getvalue()


def seed(*args: str, **options) -> str:
    out = StringIO()
    call_command("seed_demo", *args, no_progress=True, stdout=out, stderr=out, **options)
    return out.getvalue()


def counts(*models) -> dict:
    return {model: model.objects.count() for model in models}


@pytest.fixture
def ml_copy(tmp_path: Path) -> Path:
    """A writable copy of ml-mini, to break."""
    folder = tmp_path / "ml-mini"
    shutil.copytree(ML_MINI, folder)
    return folder


def replace_line(file: Path, number: int, text: str) -> None:
    lines = file.read_text().splitlines()
    lines[number - 1] = text
    file.write_text("\n".join(lines) + "\n")


# -- load_movielens --------------------------------------------------------------------------


def test_load_movielens_twice_gives_the_same_rows():
    first = load()
    assert counts(*ML_MINI_COUNTS) == ML_MINI_COUNTS
    assert Title.genres.through.objects.count() == 23
    second = load()
    assert counts(*ML_MINI_COUNTS) == ML_MINI_COUNTS
    assert Title.genres.through.objects.count() == 23
    for output in (first, second):
        assert output.startswith(
            f"Loaded 10 titles, 16 genres, 55 ad breaks, 8 viewers, 30 ratings from {ML_MINI} in "
        )
        assert len(output.strip().splitlines()) == 1


def test_load_movielens_makes_titles_from_items():
    load()
    toy_story = Title.objects.get(external_id="ml:1")
    assert (toy_story.name, toy_story.year, toy_story.kind) == ("Toy Story", 1995, "movie")
    assert sorted(toy_story.genres.values_list("name", flat=True)) == [
        "Animation",
        "Children's",
        "Comedy",
    ]
    assert toy_story.maturity_rating == MaturityRating.G
    assert toy_story.duration_seconds == 115 * 60
    assert list(toy_story.ad_breaks.values_list("offset_seconds", "max_pod_duration_seconds")) == [
        (0, 90),
        (1200, 120),
        (2400, 120),
        (3600, 120),
        (4800, 120),
        (6000, 120),
    ]
    # The year is in the name, not in the year column ("V"): it moves out of the name.
    land_before_time = Title.objects.get(external_id="ml:8")
    assert land_before_time.name == "Land Before Time III: The Time of the Great Giving"
    assert land_before_time.year == 1995
    unknown = Title.objects.get(external_id="ml:9")
    assert (unknown.name, unknown.year) == ("unkonwn", None)
    assert list(unknown.genres.values_list("slug", flat=True)) == ["unknown"]
    ratings = dict(Title.objects.values_list("external_id", "maturity_rating"))
    assert ratings["ml:3"] == ratings["ml:5"] == ratings["ml:10"] == MaturityRating.R
    assert ratings["ml:6"] == MaturityRating.PG  # Children's, but also Adventure and Fantasy
    assert ratings["ml:4"] == ratings["ml:7"] == MaturityRating.PG_13
    assert Genre.objects.get(slug="sci-fi").name == "Sci-Fi"
    assert Genre.objects.get(slug="childrens").name == "Children's"
    assert Genre.objects.get(slug="film-noir").name == "Film-Noir"


def test_load_movielens_makes_viewers_from_users():
    load()
    kid = Viewer.objects.get(external_id="ml:3")  # 7, M, student, 55436
    assert (kid.age_band, kid.gender, kid.region, kid.device, kid.is_kids) == (
        AgeBand.UNDER_18,
        Gender.MALE,
        Region.MIDWEST,
        Device.MOBILE,
        True,
    )
    teenager = Viewer.objects.get(external_id="ml:5")  # 17: under 18, but no kids profile
    assert (teenager.age_band, teenager.is_kids, teenager.region) == (
        AgeBand.UNDER_18,
        False,
        Region.SOUTHEAST,
    )
    canadian = Viewer.objects.get(external_id="ml:7")  # 42, F, programmer, K7L5J
    assert (canadian.age_band, canadian.region, canadian.device) == (
        AgeBand.AGE_35_44,
        Region.INTERNATIONAL,
        Device.DESKTOP,
    )
    regions = dict(Viewer.objects.values_list("external_id", "region"))
    assert regions["ml:4"] == Region.NORTHEAST  # 02138: the leading zero counts
    assert regions["ml:6"] == Region.SOUTH
    assert regions["ml:1"] == Region.WEST
    devices = dict(Viewer.objects.values_list("external_id", "device"))
    assert devices["ml:4"] == Device.TABLET  # educator
    assert devices["ml:6"] == Device.CTV  # retired


def test_load_movielens_keeps_ratings_with_their_utc_time():
    load()
    rating = Rating.objects.get(viewer__external_id="ml:3", title__external_id="ml:1")
    assert rating.rating == 5
    assert rating.rated_at == datetime(1997, 9, 24, 3, 41, 24, tzinfo=UTC)
    assert Rating.objects.filter(rating__gte=4).count() == 20


def test_load_movielens_again_updates_what_changed(ml_copy):
    load(ml_copy)
    replace_line(ml_copy / "ml-mini.inter", 9, "3\t1\t2\t875072484")
    replace_line(ml_copy / "ml-mini.item", 2, "1\tToy Story (1995)\t\tAnimation Comedy")
    load(ml_copy)
    assert counts(*ML_MINI_COUNTS) == {**ML_MINI_COUNTS, Genre: 16}
    rating = Rating.objects.get(viewer__external_id="ml:3", title__external_id="ml:1")
    assert rating.rating == 2
    toy_story = Title.objects.get(external_id="ml:1")
    assert (toy_story.name, toy_story.year) == ("Toy Story", 1995)
    assert sorted(toy_story.genres.values_list("slug", flat=True)) == ["animation", "comedy"]
    # Without Children's it is no longer G.
    assert toy_story.maturity_rating == MaturityRating.PG


def test_load_movielens_leaves_nothing_behind_when_a_write_fails(monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("demo.movielens.ratings_upsert", fail)
    with pytest.raises(RuntimeError):
        load()
    assert counts(*ML_MINI_COUNTS) == dict.fromkeys(ML_MINI_COUNTS, 0)


def test_load_movielens_refuses_a_missing_folder(tmp_path):
    with pytest.raises(CommandError, match="nowhere is not a folder"):
        load(tmp_path / "nowhere")


@pytest.mark.parametrize("suffix", ["item", "user", "inter"])
def test_load_movielens_names_a_missing_file(ml_copy, suffix):
    (ml_copy / f"ml-mini.{suffix}").unlink()
    with pytest.raises(CommandError, match=rf"Missing file ml-mini\.{suffix} in "):
        load(ml_copy)
    assert counts(*ML_MINI_COUNTS) == dict.fromkeys(ML_MINI_COUNTS, 0)


@pytest.mark.parametrize(
    ("suffix", "line", "text", "message"),
    [
        ("inter", 31, "8\t7\tfour\t877889599", "ml-mini.inter line 31: rating 'four' is not a"),
        ("inter", 12, "4\t1\t7\t890721308", "ml-mini.inter line 12: rating 7 is not 1 to 5"),
        ("inter", 5, "1\t99\t4\t881251840", "ml-mini.inter line 5: item '99' is not in the"),
        ("inter", 6, "1\t1\t4\t881251840", "ml-mini.inter line 6: user 1 already rated item 1"),
        ("inter", 7, "2\t4\t3\tinf", "ml-mini.inter line 7: timestamp 'inf' is not a number"),
        ("inter", 3, "1\t2\t4", "ml-mini.inter line 3: expected 4 tab-separated fields, found 3"),
        ("user", 4, "3\tseven\tM\tstudent\t55436", "ml-mini.user line 4: age 'seven' is not"),
        ("user", 9, "8\t29\tX\texecutive\t46202", "ml-mini.user line 9: gender 'X' is not M, F"),
        ("item", 11, "10\tFargo\t1066\tCrime", "ml-mini.item line 11: release_year 1066 is"),
        ("item", 3, "1\tGoldenEye\t1995\tAction", "ml-mini.item line 3: item 1 appears twice"),
        ("item", 1, "item_id:token\tmovie_title:token_seq", "ml-mini.item line 1: the header"),
    ],
)
def test_load_movielens_names_the_line_of_a_malformed_row_and_loads_nothing(
    ml_copy, suffix, line, text, message
):
    replace_line(ml_copy / f"ml-mini.{suffix}", line, text)
    with pytest.raises(CommandError) as raised:
        load(ml_copy)
    assert message in str(raised.value)
    assert counts(*ML_MINI_COUNTS) == dict.fromkeys(ML_MINI_COUNTS, 0)


# -- seed_demo -------------------------------------------------------------------------------

DEMAND = (Advertiser, User, Membership, Campaign, LineItem, Creative, Player)
DEMAND_COUNTS = {
    Advertiser: 3,
    User: 10,
    Membership: 9,
    Campaign: 8,
    LineItem: 12,
    Creative: 18,
    Player: 1,
}


def test_seed_demo_synthetic_twice_gives_the_same_world():
    first = seed()
    world = counts(Title, Genre, AdBreak, Viewer, *DEMAND)
    assert world == {
        Title: 300,
        Genre: 18,
        AdBreak: 1506,
        Viewer: 3000,
        **DEMAND_COUNTS,
    }
    second = seed()
    assert counts(Title, Genre, AdBreak, Viewer, *DEMAND) == world
    assert "created this run: 3 advertisers, 10 users, 8 campaigns, 12 line items" in first
    assert "created this run: 0 advertisers, 0 users, 0 campaigns, 0 line items" in second
    # The viewer app's web player plays through the VAST and VMAP tags under this id.
    assert Player.objects.filter(public_id="interlude-web", is_active=True).exists()


def test_seed_demo_synthetic_catalog_covers_every_choice():
    seed()
    titles = Title.objects.filter(external_id__startswith="demo:")
    assert set(titles.values_list("maturity_rating", flat=True)) == set(MaturityRating.values)
    assert set(titles.values_list("kind", flat=True)) == set(Title.Kind.values)
    assert set(titles.values_list("genres__slug", flat=True)) == set(
        Genre.objects.values_list("slug", flat=True)
    )
    assert not titles.filter(ad_breaks=None).exists()
    viewers = Viewer.objects.filter(external_id__startswith="demo:")
    for field, choices in (
        ("age_band", AgeBand),
        ("gender", Gender),
        ("region", Region),
        ("device", Device),
    ):
        assert set(viewers.values_list(field, flat=True)) == set(choices.values), field
    kids = viewers.filter(is_kids=True)
    assert 50 < kids.count() < 300
    assert set(kids.values_list("age_band", flat=True)) == {AgeBand.UNDER_18}


def test_seed_demo_can_make_a_smaller_world():
    seed(titles=12, viewers=40)
    assert counts(Title, Viewer) == {Title: 12, Viewer: 40}
    assert counts(*DEMAND) == DEMAND_COUNTS


def test_seed_demo_line_items_use_every_targeting_option():
    seed(titles=60, viewers=50)
    line_items = LineItem.objects.all()
    for field, choices in LineItem.TARGETING_CHOICES.items():
        used = {value for values in line_items.values_list(field, flat=True) for value in values}
        assert used == set(choices.values), field
    assert line_items.filter(target_genres__isnull=False).distinct().count() == 4
    assert line_items.filter(include_titles__isnull=False).distinct().count() == 2
    assert line_items.filter(exclude_titles__isnull=False).distinct().count() == 1
    family = LineItem.objects.get(name="Little Savers · Family viewing")
    assert {title.maturity_rating for title in family.include_titles.all()} == {"G"}
    assert set(line_items.values_list("pricing", flat=True)) == set(LineItem.Pricing.values)
    assert set(line_items.values_list("pacing", flat=True)) == set(LineItem.Pacing.values)
    for cap in ("frequency_cap_hour", "frequency_cap_day", "frequency_cap_lifetime"):
        assert line_items.filter(**{f"{cap}__isnull": False}).exists(), cap
    creatives = Creative.objects.all()
    assert set(creatives.values_list("duration_seconds", flat=True)) == {15, 30, 60}
    assert len(set(creatives.values_list("category", flat=True))) >= 4
    finance = creatives.filter(category=Creative.Category.FINANCE)
    assert set(finance.values_list("advertiser__slug", flat=True)) == {"northwind", "lumen"}
    for model in (Campaign, LineItem, Creative):
        assert model.objects.filter(status=DeliveryStatus.ARCHIVED).exists(), model
    assert LineItem.objects.filter(status=DeliveryStatus.PAUSED).count() == 1
    assert Creative.objects.filter(status=DeliveryStatus.PAUSED).count() == 1


def test_seed_demo_flights_are_live_now():
    seed(titles=12, viewers=10)
    now = timezone.now()
    live = LineItem.objects.exclude(status=DeliveryStatus.ARCHIVED)
    assert live.count() == 11
    for line_item in live:
        assert line_item.start_at < now - timezone.timedelta(days=2), line_item
        assert line_item.end_at > now + timezone.timedelta(days=28), line_item
        line_item.full_clean()  # inside its campaign's dates, in the advertiser's time zone
    archived = LineItem.objects.get(status=DeliveryStatus.ARCHIVED)
    assert archived.end_at < now


def test_seed_demo_accounts_users_and_roles(client):
    output = seed(titles=12, viewers=10)
    accounts = {
        advertiser.slug: (advertiser.name, advertiser.timezone, advertiser.currency)
        for advertiser in Advertiser.objects.all()
    }
    assert accounts == {
        "fizzy": ("Fizzy Cola", "America/New_York", "USD"),
        "northwind": ("Northwind Motors", "Europe/Berlin", "EUR"),
        "lumen": ("Lumen Bank", "America/Los_Angeles", "USD"),
    }
    for slug in accounts:
        roles = dict(
            Membership.objects.filter(advertiser__slug=slug).values_list("user__username", "role")
        )
        assert roles == {f"{slug}-owner": "owner", f"{slug}-manager": "manager",
                         f"{slug}-analyst": "analyst"}  # fmt: skip
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert not User.objects.filter(is_staff=True).exclude(username="admin").exists()
    for user in User.objects.all():
        assert client.login(username=user.username, password=DEMO_PASSWORD), user.username
        assert f"{user.username} " in output
    assert "fizzy-analyst      interlude-demo  Fizzy Cola" in output
    assert output.count(DEMO_PASSWORD) == 10


def test_seed_demo_keeps_what_people_changed_since():
    seed(titles=12, viewers=10)
    line_item = LineItem.objects.get(name="Summer Refresh · Mobile mornings")
    # Its creative is renamed (so the plan's is missing) and the line item archived.
    Creative.objects.filter(line_item=line_item).update(name="Morning Fizz (old)")
    line_item.status = DeliveryStatus.ARCHIVED
    line_item.save()
    LineItem.objects.filter(name="Aurora EV · Premium TV").update(bid="31.0000")
    output = seed(titles=12, viewers=10)
    assert "0 line items, 0 creatives" in output
    assert list(line_item.creatives.values_list("name", flat=True)) == ["Morning Fizz (old)"]
    assert str(LineItem.objects.get(name="Aurora EV · Premium TV").bid) == "31.0000"


def test_seed_demo_sets_the_password_again(client):
    seed(titles=12, viewers=10)
    seed(titles=12, viewers=10, password="another-secret")
    assert client.login(username="lumen-manager", password="another-secret")
    assert not client.login(username="lumen-manager", password=DEMO_PASSWORD)


def test_seed_demo_from_movielens_twice_gives_the_same_world():
    first = seed(str(ML_MINI))
    assert first.startswith("Loaded 10 titles, 16 genres, 55 ad breaks, 8 viewers, 30 ratings")
    world = counts(*ML_MINI_COUNTS, *DEMAND)
    assert world == {**ML_MINI_COUNTS, **DEMAND_COUNTS}
    seed(str(ML_MINI))
    assert counts(*ML_MINI_COUNTS, *DEMAND) == world
    assert not Title.objects.filter(external_id__startswith="demo:").exists()
    documentary = LineItem.objects.get(name="Aurora EV · Documentary viewers")
    assert list(documentary.include_titles.values_list("name", flat=True)) == ["Hoop Dreams"]
    action = LineItem.objects.get(name="Zero Sugar · Action fans")
    assert list(action.exclude_titles.values_list("name", flat=True)) == ["Scream"]


def test_seed_demo_reads_movielens_path_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOVIELENS_PATH", str(ML_MINI))
    seed()
    assert Title.objects.count() == 10
    assert Title.objects.filter(external_id__startswith="ml:").count() == 10


def test_seed_demo_falls_back_to_synthetic_when_movielens_path_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("MOVIELENS_PATH", str(tmp_path / "nowhere"))
    output = seed(titles=12, viewers=10)
    assert "is not a folder; building a synthetic catalog instead" in output
    assert Title.objects.filter(external_id__startswith="demo:").count() == 12


def test_seed_demo_refuses_a_missing_path(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        seed(str(tmp_path / "nowhere"))
    assert counts(*DEMAND) == dict.fromkeys(DEMAND, 0)
