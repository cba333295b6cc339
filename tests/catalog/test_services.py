import pytest
from django.core.exceptions import ValidationError

from catalog import services
from catalog.models import AdBreak, AgeBand, Device, Genre, MaturityRating, Region, Title, Viewer
from catalog.services import TitleSpec, ViewerSpec

pytestmark = pytest.mark.django_db


def title_spec(external_id: str = "test:1", **changes) -> TitleSpec:
    values = {
        "external_id": external_id,
        "name": "The Quiet Harbor",
        "year": 2001,
        "duration_seconds": 100 * 60,
        "maturity_rating": MaturityRating.PG,
        "genre_slugs": ("drama",),
    } | changes
    return TitleSpec(**values)


def viewer_spec(external_id: str = "test:1", **changes) -> ViewerSpec:
    values = {
        "external_id": external_id,
        "age_band": AgeBand.AGE_25_34,
        "region": Region.WEST,
        "device": Device.CTV,
    } | changes
    return ViewerSpec(**values)


@pytest.fixture
def genres() -> dict[str, Genre]:
    return services.genres_upsert(genres={"drama": "Drama", "comedy": "Comedy", "war": "War"})


def test_genres_upsert_creates_then_renames(genres):
    assert sorted(genres) == ["comedy", "drama", "war"]
    again = services.genres_upsert(genres={"drama": "Drama (all)"})
    assert Genre.objects.count() == 3
    assert again["drama"].pk == genres["drama"].pk
    assert Genre.objects.get(slug="drama").name == "Drama (all)"


def test_genres_upsert_refuses_a_name_taken_under_another_slug(genres):
    with pytest.raises(ValidationError, match="belongs to the genre 'drama'"):
        services.genres_upsert(genres={"dramas": "Drama"})
    assert Genre.objects.count() == 3


def test_titles_upsert_is_keyed_on_the_external_id(genres):
    first = services.titles_upsert(titles=[title_spec("a"), title_spec("b")])
    assert Title.objects.count() == 2
    second = services.titles_upsert(
        titles=[title_spec("a", name="Renamed", year=None, genre_slugs=("comedy", "war"))]
    )
    assert Title.objects.count() == 2
    assert second["a"].pk == first["a"].pk
    renamed = Title.objects.get(external_id="a")
    assert (renamed.name, renamed.year) == ("Renamed", None)
    # The genres are set to exactly the new ones; the other title keeps its own.
    assert sorted(renamed.genres.values_list("slug", flat=True)) == ["comedy", "war"]
    assert list(Title.objects.get(external_id="b").genres.values_list("slug", flat=True)) == [
        "drama"
    ]


def test_titles_upsert_a_second_time_writes_no_genre_links(genres):
    specs = [title_spec(f"t{number}", genre_slugs=("drama", "war")) for number in range(5)]
    services.titles_upsert(titles=specs)
    links = list(Title.genres.through.objects.order_by("id").values_list("id", flat=True))
    services.titles_upsert(titles=specs)
    assert list(Title.genres.through.objects.order_by("id").values_list("id", flat=True)) == links


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"genre_slugs": ("drama", "western")}, "genre_slugs"),
        ({"maturity_rating": "X"}, "maturity_rating"),
        ({"year": 1700}, "year"),
        ({"duration_seconds": 30}, "duration_seconds"),
        ({"kind": "podcast"}, "kind"),
        ({"name": ""}, "name"),
    ],
)
def test_titles_upsert_refuses_bad_values_before_writing(genres, changes, field):
    with pytest.raises(ValidationError) as raised:
        services.titles_upsert(titles=[title_spec("good"), title_spec("bad", **changes)])
    assert f"bad.{field}" in raised.value.message_dict
    assert not Title.objects.exists()


def test_upserts_refuse_an_external_id_twice(genres):
    with pytest.raises(ValidationError, match="'a' appears twice"):
        services.titles_upsert(titles=[title_spec("a"), title_spec("b"), title_spec("a")])
    with pytest.raises(ValidationError, match="'v' appears twice"):
        services.viewers_upsert(viewers=[viewer_spec("v"), viewer_spec("v")])
    assert not Title.objects.exists() and not Viewer.objects.exists()


@pytest.mark.parametrize(
    ("minutes", "offsets"),
    [
        (22, [0]),  # a half-hour episode: only a pre-roll
        (44, [0, 1200]),
        (80, [0, 1200, 2400, 3600]),
        (90, [0, 1200, 2400, 3600]),  # not at 80 minutes: that is within 10 of the end
        (91, [0, 1200, 2400, 3600, 4800]),
        (150, [0, 1200, 2400, 3600, 4800, 6000, 7200]),
    ],
)
def test_ad_break_plan(minutes, offsets):
    plan = services.ad_break_plan(duration_seconds=minutes * 60)
    assert [offset for offset, _ in plan] == offsets
    assert [pod for _, pod in plan] == [90] + [120] * (len(offsets) - 1)


def test_ad_breaks_ensure_adds_only_the_missing_breaks(genres):
    specs = [title_spec("a"), title_spec("b", duration_seconds=50 * 60)]
    titles = services.titles_upsert(titles=specs)
    assert services.ad_breaks_ensure(titles=titles.values()) == 5 + 2
    assert AdBreak.objects.count() == 7
    # Staff shortened a pod and added a break of their own; a second run keeps both.
    AdBreak.objects.filter(title__external_id="a", offset_seconds=1200).update(
        max_pod_duration_seconds=60
    )
    AdBreak.objects.create(title=Title.objects.get(external_id="a"), offset_seconds=3000)
    assert services.ad_breaks_ensure(titles=titles.values()) == 7
    assert AdBreak.objects.count() == 8
    shortened = AdBreak.objects.get(title__external_id="a", offset_seconds=1200)
    assert shortened.max_pod_duration_seconds == 60


def test_viewers_upsert_is_keyed_on_the_external_id():
    first = services.viewers_upsert(viewers=[viewer_spec("a"), viewer_spec("b")])
    second = services.viewers_upsert(
        viewers=[viewer_spec("a", device=Device.MOBILE, age_band=AgeBand.UNDER_18, is_kids=True)]
    )
    assert Viewer.objects.count() == 2
    assert second["a"] == first["a"]
    viewer = Viewer.objects.get(external_id="a")
    assert (viewer.device, viewer.age_band, viewer.is_kids) == (Device.MOBILE, "under_18", True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"region": "mars"}, "region"),
        ({"device": "watch"}, "device"),
        ({"age_band": "12_17"}, "age_band"),
        ({"gender": "X"}, "gender"),
        ({"is_kids": True}, "is_kids"),  # a kids profile in the 25-34 band
    ],
)
def test_viewers_upsert_refuses_bad_values_before_writing(changes, field):
    with pytest.raises(ValidationError) as raised:
        services.viewers_upsert(viewers=[viewer_spec("good"), viewer_spec("bad", **changes)])
    assert f"bad.{field}" in raised.value.message_dict
    assert not Viewer.objects.exists()
