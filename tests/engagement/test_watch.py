"""The viewer app's pages: profiles (/watch/ offers the household; a browser binds to any viewer
of the catalog, as the simulated audience does), the home
(kids filtering, popularity without a model, the ranking of the real engagement model), the
player page (its ad configuration; a kids profile gets none)."""

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from catalog.models import AgeBand, MaturityRating
from engagement import selectors
from engagement.learning import engagement_model_train
from engagement.models import PlaybackEvent, Rating, ViewingSession
from ml import serving
from tests.engagement.test_learning import WINDOW_END, build_world
from tests.factories import AdBreakFactory, GenreFactory, TitleFactory, ViewerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    cache.clear()
    serving.champions.reset()
    yield
    serving.champions.reset()


def household():
    """Five adults (the first four are profiles) and two kids (the first is a profile)."""
    adults = [ViewerFactory() for _ in range(5)]
    kids = [ViewerFactory(is_kids=True, age_band=AgeBand.UNDER_18) for _ in range(2)]
    return adults, kids


def choose(client, viewer):
    response = client.post(f"/watch/profiles/{viewer.pk}")
    assert response.status_code == 302, response.content
    assert response["Location"] == "/watch/home"


@dataclass
class PageRow:
    heading: str
    note: str
    title_ids: list[int]


def page_rows(content: bytes) -> dict[str, PageRow]:
    """The rows of a home page as it reads: key → heading, note and its cards' title ids."""
    rows = {}
    for section in content.decode().split('<section class="row" data-row="')[1:]:
        key = section.split('"', 1)[0]
        heading = re.search(r"<h2[^>]*>(.*?)</h2>", section).group(1)
        note = re.search(r'<p class="row-note">(.*?)</p>', section)
        rows[key] = PageRow(
            heading=html.unescape(heading),
            note=html.unescape(note.group(1)) if note else "",
            title_ids=[int(pk) for pk in re.findall(r'data-title="(\d+)"', section)],
        )
    return rows


def home_rows(client) -> dict[str, list[int]]:
    response = client.get("/watch/home")
    assert response.status_code == 200
    return {key: row.title_ids for key, row in page_rows(response.content).items()}


def test_profiles_are_the_first_four_adults_and_the_first_kids_profile(client):
    adults, kids = household()
    response = client.get("/watch/")

    assert response.status_code == 200
    profiles = response.context["profiles"]
    assert [p.viewer for p in profiles] == [*adults[:4], kids[0]]
    assert [p.name for p in profiles] == ["Alex", "Sam", "Robin", "Jo", "Kids"]
    assert [p.is_kids for p in profiles] == [False] * 4 + [True]
    assert response.content.count(b'class="profile-button"') == 5


def test_choosing_a_profile_binds_the_browser_to_it_and_only_to_a_viewer(client):
    adults, kids = household()
    assert client.get("/watch/home")["Location"] == "/watch/"  # no profile yet

    assert client.post("/watch/profiles/999999").status_code == 404
    assert client.get(f"/watch/profiles/{adults[0].pk}").status_code == 405
    assert "watch_viewer_id" not in client.session

    choose(client, adults[1])
    assert client.session["watch_viewer_id"] == adults[1].pk
    response = client.get("/watch/home")
    assert response.context["profile"].name == "Sam"
    assert page_rows(response.content)["picks"].heading == "Top picks for Sam"
    assert b"il_" not in response.content  # no platform key on the page


def test_any_viewer_of_the_catalog_binds_under_its_external_id(client):
    """/watch/ offers the household only; the choice takes any viewer (the simulated audience)."""
    adults, _ = household()
    assert adults[4].pk not in {p.viewer.pk for p in client.get("/watch/").context["profiles"]}
    choose(client, adults[4])
    assert client.session["watch_viewer_id"] == adults[4].pk
    response = client.get("/watch/home")
    assert response.context["profile"].name == adults[4].external_id
    assert page_rows(response.content)["picks"].heading == f"Top picks for {adults[4].external_id}"


# The household's kids profile, and a kids viewer of the catalog outside the household.
@pytest.mark.parametrize("which", [0, 1])
def test_a_kids_profile_sees_only_kids_titles_and_cannot_open_others(client, which):
    _, kids = household()
    comedy = GenreFactory(name="Comedy", slug="comedy")
    by_rating = {}
    for rating in MaturityRating.values:
        title = TitleFactory(maturity_rating=rating)
        title.genres.set([comedy])
        by_rating[rating] = title
    choose(client, kids[which])

    rows = home_rows(client)
    kids_titles = {by_rating["G"].pk, by_rating["PG"].pk}
    assert set(rows["picks"]) == kids_titles
    assert set(rows["genre-comedy"]) == kids_titles
    assert all(set(ids) <= kids_titles for ids in rows.values())
    for rating in ("PG-13", "R", "NC-17"):
        assert client.get(f"/watch/title/{by_rating[rating].pk}").status_code == 404
    page = client.get(f"/watch/title/{by_rating['G'].pk}")
    assert page.status_code == 200
    assert page.context["config"]["ads"] is False
    assert b"A kids profile plays without ads." in page.content


def test_without_a_champion_the_home_ranks_by_popularity_and_says_so(client):
    adults, _ = household()
    drama = GenreFactory(name="Drama", slug="drama")
    titles = [TitleFactory() for _ in range(3)]
    for title in titles:
        title.genres.set([drama])
    watchers = [ViewerFactory() for _ in range(3)]
    when = datetime(2026, 1, 1, tzinfo=UTC)
    # titles[2] rated by three viewers, titles[0] by two, titles[1] by none.
    for viewer in watchers:
        Rating.objects.create(viewer=viewer, title=titles[2], rating=3, rated_at=when)
    for viewer in watchers[:2]:
        Rating.objects.create(viewer=viewer, title=titles[0], rating=2, rated_at=when)
    choose(client, adults[0])

    picks = page_rows(client.get("/watch/home").content)["picks"]
    assert picks.title_ids == [titles[2].pk, titles[0].pk, titles[1].pk]
    assert picks.note == "Popular on Interlude: no engagement model is trained yet."

    # The page is cached until the profile's history changes: rated now, no longer offered.
    Rating.objects.create(viewer=adults[0], title=titles[2], rating=4, rated_at=when)
    assert home_rows(client)["picks"] == [titles[0].pk, titles[1].pk]


def test_continue_watching_and_because_you_watched_come_from_the_history(client):
    adults, _ = household()
    viewer = adults[0]
    action, drama = GenreFactory(name="Action", slug="action"), GenreFactory(name="Drama")
    finished, alike, unlike, left = (TitleFactory(duration_seconds=6000) for _ in range(4))
    for title, genre in ((finished, action), (alike, action), (unlike, drama), (left, drama)):
        title.genres.set([genre])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ViewingSession.objects.create(
        viewer=viewer, title=finished, device="ctv", started_at=start,
        ended_at=start + timedelta(hours=2), watched_seconds=6000, completed=True,
    )  # fmt: skip
    stopped = ViewingSession.objects.create(
        viewer=viewer, title=left, device="ctv", started_at=start + timedelta(days=1),
        ended_at=start + timedelta(days=1, hours=1), watched_seconds=900, abandoned=True,
    )  # fmt: skip
    PlaybackEvent.objects.create(
        session=stopped, kind="abandon", position_seconds=1500, at=stopped.ended_at
    )
    choose(client, viewer)

    response = client.get("/watch/home")
    rows = page_rows(response.content)
    assert list(rows)[:3] == ["continue", "picks", "because"]
    assert rows["continue"].title_ids == [left.pk]
    assert f'href="/watch/title/{left.pk}?t=1500"'.encode() in response.content
    assert b'aria-valuenow="25"' in response.content  # 1,500 s of 6,000
    assert rows["because"].heading == f"Because you watched {finished.name}"
    assert rows["because"].title_ids == [alike.pk]
    assert finished.pk not in rows["picks"].title_ids  # finished: not offered


def test_the_engagement_model_ranks_a_profiles_favourite_genre_higher(
    client, django_assert_max_num_queries
):
    """The real model trained on a small world (100 viewers × 30 ratings, four genres) in
    which the first profile's own history loves comedy and hates horror."""
    world = build_world()
    profile = world.viewers[0]
    assert selectors.watch_profiles()[0].viewer == profile
    by_genre: dict[str, list] = {}
    for title in world.titles:
        by_genre.setdefault(title.genres.get().slug, []).append(title)
    Rating.objects.filter(viewer=profile).delete()
    when = WINDOW_END - timedelta(days=30)
    for genre, stars in (("comedy", 5), ("horror", 1)):
        for title in by_genre[genre][:6]:  # 4 of each genre stay unrated
            Rating.objects.create(viewer=profile, title=title, rating=stars, rated_at=when)
    version = engagement_model_train(window_end=WINDOW_END)
    assert version.status == "champion"
    choose(client, profile)

    rows = home_rows(client)
    ranking = rows["picks"]
    comedy = {t.pk for t in by_genre["comedy"][6:]}
    horror = {t.pk for t in by_genre["horror"][6:]}
    in_picks = [pk for pk in ranking if pk in comedy | horror]
    # Every unrated comedy before every unrated horror among the top picks (if any is there).
    assert in_picks[: len(comedy & set(in_picks))] == [pk for pk in in_picks if pk in comedy]
    assert comedy <= set(ranking)
    genre_order = [key for key in rows if key.startswith("genre-")]
    assert genre_order.index("genre-comedy") < genre_order.index("genre-horror")
    assert not set(rows["picks"]) & {t.pk for t in by_genre["comedy"][:6]}  # rated: left out

    # Cached per profile, champion version and history: the browser's session, the profile
    # (two), the history's stamp (two); no model, no catalog.
    with django_assert_max_num_queries(5):
        assert home_rows(client)["picks"] == ranking


def test_the_player_page_carries_its_breaks_and_vmap_but_no_key(client):
    adults, _ = household()
    title = TitleFactory(duration_seconds=3000, name="Harbor Lights")
    for offset in (0, 900, 1800):
        AdBreakFactory(title=title, offset_seconds=offset)
    choose(client, adults[0])

    response = client.get(f"/watch/title/{title.pk}?t=120&timescale=30")
    assert response.status_code == 200
    config = response.context["config"]
    assert config["breaks"] == [0, 900, 1800]
    assert (config["start"], config["timescale"], config["ads"]) == (120, 30, True)
    assert config["vmapUrl"] == (
        f"/vmap/1.0?player=interlude-web&viewer={adults[0].external_id}&title={title.pk}"
        "&device=desktop"
    )
    assert b'id="watch-config"' in response.content
    assert b"Authorization" not in response.content and b"il_" not in response.content
    assert client.get("/watch/title/999999").status_code == 404
