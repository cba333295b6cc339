"""Staff pages: who sees them (staff only; an advertiser's owner gets a 404), the executive
dashboard's figures against a hand count of sessions, counters and timings, its live partial,
the model monitoring page's versions, reliability and drift with the PSI bands at their
boundaries, and query counts that do not grow with the data."""

import datetime as dt
import json
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from ads.delivery import keys
from ads.delivery.counters import Bump, counters
from ads.delivery.latency import recorder
from engagement.models import ViewingSession
from ml.models import DriftMeasurement, ModelVersion
from tests.factories import AdvertiserFactory, TitleFactory, UserFactory, ViewerFactory

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 10, 16, 0, tzinfo=dt.UTC)
DASH = "—"
STAFF_PAGES = [
    ("staff_dashboard", []),
    ("staff_dashboard_figures", []),
    ("staff_models", ["ctr"]),
    ("staff_models", ["engagement"]),
    ("staff_models", ["live_engagement"]),
    ("staff_sessions", []),
]


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", is_staff=True)


class PageReader(HTMLParser):
    """What a person reads: each figure (by `data-figure`) and each table (by `data-table`) as
    rows of cell texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._figure: str | None = None
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-figure" in attrs:
            self._figure = attrs["data-figure"]
            self.figures[self._figure] = ""
        if tag == "table" and "data-table" in attrs:
            self._table = self.tables.setdefault(attrs["data-table"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("span", "time"):
            self._figure = None
        elif tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._figure is not None:
            self.figures[self._figure] += data.strip()
        if self._cell is not None:
            self._cell.append(data)


def read(client, path, **headers) -> PageReader:
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    return PageReader(response.content.decode())


def version(kind, number, status, metrics=None, **fields) -> ModelVersion:
    return ModelVersion.objects.create(
        kind=kind,
        version=number,
        status=status,
        algorithm=fields.pop("algorithm", "logistic"),
        metrics=metrics or {},
        artifact=b"",
        **fields,
    )


def session(title, started, *, ended=None, watched=0, completed=False, abandoned=False, score=None):
    return ViewingSession.objects.create(
        viewer=ViewerFactory(),
        title=title,
        device="ctv",
        started_at=started,
        ended_at=ended,
        watched_seconds=watched,
        completed=completed,
        abandoned=abandoned,
        engagement_score=score,
    )


# Who may see the pages


@pytest.mark.parametrize(("name", "args"), STAFF_PAGES)
def test_staff_see_the_pages(client, staff, name, args):
    client.force_login(staff)
    assert client.get(reverse(name, args=args)).status_code == 200


@pytest.mark.parametrize(("name", "args"), STAFF_PAGES)
def test_an_advertisers_owner_gets_404(client, tenancy, name, args):
    client.force_login(tenancy.owner)
    assert client.get(reverse(name, args=args)).status_code == 404


@pytest.mark.parametrize(("name", "args"), STAFF_PAGES)
def test_anonymous_is_sent_to_login(client, db, name, args):
    path = reverse(name, args=args)
    response = client.get(path)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={path}"


def test_a_polling_request_after_the_session_ended_sends_the_page_to_login(client, db):
    response = client.get(
        reverse("staff_dashboard_figures"),
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/staff/"},
    )
    # htmx reloads the whole page on the login form, instead of swapping it into the tiles.
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('login')}?next=/staff/"


def test_an_unknown_model_kind_is_404(client, staff):
    client.force_login(staff)
    assert client.get(reverse("staff_models", args=["churn"])).status_code == 404
    assert client.get("/staff/models/CTR/").status_code == 404


def test_staff_find_the_pages_from_the_header_and_the_admin(client, staff, tenancy):
    client.force_login(staff)
    landing = client.get(reverse("accounts"), follow=True)  # staff without accounts: /staff/
    assert landing.redirect_chain == [(reverse("staff_dashboard"), 302)]
    assert f'href="{reverse("staff_dashboard")}"' in landing.content.decode()
    admin_index = client.get(reverse("admin:index")).content.decode()
    for path in ("/staff/", "/staff/models/ctr/", "/staff/models/engagement/"):
        assert f'href="{path}"' in admin_index
    assert "Site administration" in admin_index  # the stock page is still there, extended
    client.force_login(tenancy.owner)
    assert 'href="/staff/"' not in client.get(reverse("accounts")).content.decode()


# The executive dashboard


@pytest.fixture
def platform(db):
    """Hand-counted platform activity on 10 March (UTC), at 16:00:

    - viewing sessions of a 5400 s title: two open ones started in the last 4 hours (25% and
      50% watched; live scores 0.6 and 0.3), one completed this morning (100%), one left open
      since 11:00 (stale: not active, 0%; its old score 0.9 does not count), and one from last
      night (not today);
    - live counters: 5 impressions, 1 click, 3 completes, $7.50 and €2.25 spent by accounts in
      those currencies (a GBP account spent nothing); 8 decisions, 2 unfilled; another day's
      and one account's own counters, which must not count;
    - decision timings: 60 of 0.3 ms, 39 of 0.9 ms, one of 12 ms;
    - champions: CTR v2 (v1 retired), engagement v1.
    """
    for currency in ("USD", "EUR", "GBP"):
        AdvertiserFactory(currency=currency)
    title = TitleFactory(duration_seconds=5400)
    session(title, NOW - dt.timedelta(minutes=30), watched=1350, score=0.6)
    session(title, NOW - dt.timedelta(hours=3), watched=2700, score=0.3)
    session(
        title,
        dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC),
        ended=dt.datetime(2026, 3, 10, 10, 30, tzinfo=dt.UTC),
        watched=5400,
        completed=True,
    )
    session(title, dt.datetime(2026, 3, 10, 11, 0, tzinfo=dt.UTC), score=0.9)
    session(title, dt.datetime(2026, 3, 9, 23, 0, tzinfo=dt.UTC), watched=600)
    counters().add_many(
        [
            Bump(keys.live_platform(TODAY, "impressions"), 5),
            Bump(keys.live_platform(TODAY, "clicks"), 1),
            Bump(keys.live_platform(TODAY, "completes"), 3),
            Bump(keys.live_platform_spend(TODAY, "USD"), 7_500_000),
            Bump(keys.live_platform_spend(TODAY, "EUR"), 2_250_000),
            Bump(keys.live_platform_spend(TODAY - dt.timedelta(days=1), "GBP"), 1_000_000),
            Bump(keys.live_platform(TODAY - dt.timedelta(days=1), "impressions"), 100),
            Bump(keys.live(42, TODAY, "impressions"), 1000),
            Bump(keys.decisions(TODAY), 8),
            Bump(keys.unfilled(TODAY), 2),
        ]
    )
    for milliseconds in [0.3] * 60 + [0.9] * 39 + [12.0]:
        recorder.record(milliseconds)
    recorder.flush_now()
    version("ctr", 1, "retired", {"auc": 0.70, "log_loss": 0.1, "accuracy": 0.9})
    version(
        "ctr",
        2,
        "champion",
        {
            "auc": 0.73125,
            "log_loss": 0.09123,
            "accuracy": 0.96875,  # stored, not shown: meaningless at a 1 % click rate
            "calibration_ratio": 1.0204,
            "lift": [
                {
                    "group": 1,
                    "count": 10,
                    "predicted": 0.05,
                    "observed": 0.04,
                    "lift": 3.2,
                    "captured": 0.32,
                }
            ],
        },
        algorithm="logistic regression",
    )
    version("engagement", 1, "champion", {"auc": 0.8, "log_loss": 0.5, "accuracy": 0.75})


def test_the_executive_dashboard_is_the_hand_count(client, staff, platform):
    client.force_login(staff)
    reader = read(client, reverse("staff_dashboard"))
    assert reader.figures == {
        "at": "2026-03-10 16:00:00",
        "active_sessions": "2",
        "average_live_score": "45.00%",  # (0.6 + 0.3) / 2, the open sessions only
        "sessions_today": "4",  # not last night's
        "completion_rate": "50.00%",  # 1 of the 2 no longer open (the stale one did not)
        "average_engagement": "43.75%",  # (0.25 + 0.5 + 1 + 0) / 4
        "impressions": "5",
        "clicks": "1",
        "completes": "3",
        "revenue": "€2.25 · $7.50",  # per currency, never added up
        "fill_rate": "75.00%",  # (8 − 2) / 8
        "decisions": "100",
        "p50_ms": "≤ 0.5",  # 0.3 ms is in the bucket (0.25, 0.5]
        "p99_ms": "≤ 1",  # the 99th of 100 is a 0.9 ms one, in (0.75, 1]
    }
    assert reader.tables["champions"] == [
        ["Model", "Champion", "AUC", "Log loss", "Lift, top 10 %", "Calibration ratio"],
        ["Click-through rate", "v2 · logistic regression", "0.7312", "0.0912", "3.20×", "1.020"],
        ["Engagement", "v1 · logistic", "0.8000", "0.5000", DASH, DASH],
        ["Live engagement", "none yet", DASH, DASH, DASH, DASH],
    ]
    html = client.get(reverse("staff_dashboard")).content.decode()
    assert 'hx-get="/staff/figures/"' in html
    assert 'hx-trigger="every 5s"' in html
    assert "Sessions started since midnight UTC." in html  # each figure says what it is


def test_an_empty_platform_shows_dashes_not_zeros_for_ratios(client, staff):
    client.force_login(staff)
    figures = read(client, reverse("staff_dashboard")).figures
    assert (figures["active_sessions"], figures["impressions"], figures["revenue"]) == (
        "0",
        "0",
        "0.00",
    )
    for ratio in ("completion_rate", "average_engagement", "fill_rate", "p50_ms", "p99_ms"):
        assert figures[ratio] == DASH, ratio
    rows = read(client, reverse("staff_dashboard")).tables["champions"]
    assert rows[1] == ["Click-through rate", "none yet", DASH, DASH, DASH, DASH]


def test_a_slow_tail_beyond_the_last_bucket_is_shown_as_such(client, staff):
    for milliseconds in [1.0] * 9 + [2500.0]:
        recorder.record(milliseconds)
    recorder.flush_now()
    client.force_login(staff)
    figures = read(client, reverse("staff_dashboard")).figures
    assert (figures["p50_ms"], figures["p99_ms"]) == ("≤ 1", "> 1000")


def test_the_live_partial_returns_the_current_figures_alone(client, staff, platform):
    client.force_login(staff)
    counters().add_many([Bump(keys.live_platform(TODAY, "impressions"), 2)])
    response = client.get(reverse("staff_dashboard_figures"), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html
    assert "hx-get" not in html  # the polling element stays on the page; only its inside changes
    reader = PageReader(html)
    assert (reader.figures["impressions"], reader.figures["fill_rate"]) == ("7", "75.00%")
    assert reader.tables["champions"][1][2] == "0.7312"


@pytest.mark.parametrize(
    ("name", "queries"), [("staff_dashboard", 7), ("staff_dashboard_figures", 6)]
)
def test_the_executive_dashboard_queries_do_not_grow(
    client, staff, platform, django_assert_num_queries, name, queries
):
    for number in range(3, 20):
        version("ctr", number, "retired")
    title = TitleFactory()
    for minutes in range(20):
        session(title, NOW - dt.timedelta(minutes=minutes))
    client.force_login(staff)
    # Session and user; champions; active sessions and today's sessions; the accounts'
    # currencies. Counters: no query. The page alone: the latest break-placement day (none
    # here; with one, a second query reads its worst titles: see test_staff_titles).
    with django_assert_num_queries(queries):
        assert client.get(reverse(name)).status_code == 200


# Model monitoring


@pytest.fixture
def ctr_models(db):
    """CTR v1 (retired), v2 (the champion, trained on a window ending at 06:30) with its
    reliability table and drift on four days, PSI right at the bands' edges; v3, a candidate
    that lost, without normalized entropy, calibration ratio or ECE."""
    window = {
        "window_start": dt.datetime(2026, 2, 8, tzinfo=dt.UTC),
        "window_end": dt.datetime(2026, 3, 8, 6, 30, tzinfo=dt.UTC),
    }
    v1 = version(
        "ctr",
        1,
        "retired",
        {
            "auc": 0.7,
            "log_loss": 0.1,
            "normalized_entropy": 0.95,
            "calibration_ratio": 0.98,
            "ece": 0.002,
        },
        train_rows=1000,
        holdout_rows=200,
        decision="The first model of its kind, calibrated.",
    )
    champion = version(
        "ctr",
        2,
        "champion",
        {
            "auc": 0.73125,
            "log_loss": 0.09123,
            "normalized_entropy": 0.9021,
            "calibration_ratio": 1.0204,
            "ece": 0.00125,
            "reliability": [
                {"low": 0.0, "high": 0.1, "count": 900, "predicted": 0.02, "observed": 0.018},
                {"low": 0.1, "high": 0.2, "count": 100, "predicted": 0.13, "observed": 0.15},
            ],
            "lift": [
                {
                    "group": 1,
                    "count": 500,
                    "predicted": 0.1,
                    "observed": 0.08,
                    "lift": 2.5,
                    "captured": 0.625,
                },
                {
                    "group": 2,
                    "count": 500,
                    "predicted": 0.02,
                    "observed": 0.048,
                    "lift": 1.5,
                    "captured": 1.0,
                },
            ],
        },
        train_rows=120_000,
        holdout_rows=30_000,
        decision="AUC 0.7313 beats 0.7000; log loss 0.0912 beats 0.1000.",
        **window,
    )
    version(
        "ctr",
        3,
        "candidate",
        {"auc": 0.72, "log_loss": 0.0950},
        decision="AUC 0.7200 is lower than the champion's 0.7313.",
    )
    ModelVersion.objects.update(trained_at=dt.datetime(2026, 3, 9, 3, 0, tzinfo=dt.UTC))
    for day, psi in ((7, 0.26), (8, 0.25), (9, 0.1), (10, 0.09)):
        DriftMeasurement.objects.create(
            kind="ctr", model_version=champion, day=dt.date(2026, 3, day), psi=psi, rows=1000 + day
        )
    # The retired version's drift is history, not the champion's.
    DriftMeasurement.objects.create(kind="ctr", model_version=v1, day=TODAY, psi=0.9, rows=5)
    return champion


def test_the_versions_table_has_every_version_newest_first(client, staff, ctr_models):
    client.force_login(staff)
    rows = read(client, reverse("staff_models", args=["ctr"])).tables["versions"]
    assert rows[0] == [
        "Version",
        "Status",
        "Algorithm",
        "Trained at (UTC)",
        "Training window (UTC)",
        "Rows (training / held out)",
        "AUC",
        "Log loss",
        "Normalized entropy",
        "Calibration ratio",
        "ECE",
    ]
    # Each version's figures, then its training run's decision in the row under them.
    assert rows[1:] == [
        ["v3", "Candidate", "logistic", "2026-03-09 03:00", DASH, "0 / 0", "0.7200", "0.0950",
         DASH, DASH, DASH],
        ["Decision: AUC 0.7200 is lower than the champion's 0.7313."],
        ["v2", "Champion", "logistic", "2026-03-09 03:00", "2026-02-08 – 2026-03-08 06:30",
         "120,000 / 30,000", "0.7312", "0.0912", "0.9021", "1.020", "0.0013"],
        ["Decision: AUC 0.7313 beats 0.7000; log loss 0.0912 beats 0.1000."],
        ["v1", "Retired", "logistic", "2026-03-09 03:00", DASH, "1,000 / 200", "0.7000",
         "0.1000", "0.9500", "0.980", "0.0020"],
        ["Decision: The first model of its kind, calibrated."],
    ]  # fmt: skip


def test_the_versions_chart_has_auc_and_log_loss_oldest_first(client, staff, ctr_models):
    client.force_login(staff)
    html = client.get(reverse("staff_models", args=["ctr"])).content.decode()
    script = html.split('<script id="versions-chart" type="application/json">')[1]
    assert json.loads(script.split("</script>")[0]) == {
        "labels": ["v1", "v2", "v3"],
        "auc": [0.7, 0.73125, 0.72],
        "log_loss": [0.1, 0.09123, 0.095],
    }
    assert 'data-staff-chart="versions"' in html
    assert "/static/js/staff.js" in html
    assert "/static/vendor/chart-4.6.1.umd.min.js" in html


def test_the_champions_reliability_and_lift_tables_and_chart(client, staff, ctr_models):
    client.force_login(staff)
    html = client.get(reverse("staff_models", args=["ctr"])).content.decode()
    assert PageReader(html).tables["reliability"] == [
        ["Predicted probability", "Count", "Mean predicted", "Observed rate",
         "Observed − predicted"],
        ["0.00–0.10", "900", "0.0200", "0.0180", "-0.0020"],
        ["0.10–0.20", "100", "0.1300", "0.1500", "0.0200"],
    ]  # fmt: skip
    assert PageReader(html).tables["lift"] == [
        ["Tenth (highest predictions first)", "Rows", "Mean predicted", "Observed rate", "Lift",
         "Positives found so far"],
        ["1", "500", "0.1000", "0.0800", "2.50×", "62.50%"],
        ["2", "500", "0.0200", "0.0480", "1.50×", "100.00%"],
    ]  # fmt: skip
    # The chart plots the tenths (every one holds rows), not the equal-width bins.
    script = html.split('<script id="reliability-chart" type="application/json">')[1]
    chart = json.loads(script.split("</script>")[0])
    assert chart["points"] == [{"x": 0.02, "y": 0.048}, {"x": 0.1, "y": 0.08}]  # left to right
    assert chart["counts"] == [500, 500]
    assert chart["limit"] == 0.2  # the largest value, 0.1, ×1.05 rounded up to a round axis


def test_without_a_lift_table_the_chart_plots_the_bins(client, staff):
    version(
        "ctr",
        1,
        "champion",
        {"auc": 0.7, "reliability": [
            {"low": 0.0, "high": 0.1, "count": 900, "predicted": 0.02, "observed": 0.018},
            {"low": 0.1, "high": 0.2, "count": 100, "predicted": 0.13, "observed": 0.15},
        ]},
    )  # fmt: skip
    client.force_login(staff)
    html = client.get(reverse("staff_models", args=["ctr"])).content.decode()
    script = html.split('<script id="reliability-chart" type="application/json">')[1]
    chart = json.loads(script.split("</script>")[0])
    assert chart["points"] == [{"x": 0.02, "y": 0.018}, {"x": 0.13, "y": 0.15}]
    assert "was trained before lift tables were kept" in html
    # One version: the table says it all, no chart of one point.
    assert 'data-staff-chart="versions"' not in html


def test_the_drift_table_bands_psi_at_the_conventional_edges(client, staff, ctr_models):
    client.force_login(staff)
    html = client.get(reverse("staff_models", args=["ctr"])).content.decode()
    assert PageReader(html).tables["drift"] == [
        ["Day (UTC)", "Scored rows", "PSI", "Shift"],
        ["2026-03-07", "1,007", "0.2600", "significant"],  # above 0.25
        ["2026-03-08", "1,008", "0.2500", "moderate"],  # 0.25 itself is still moderate
        ["2026-03-09", "1,009", "0.1000", "moderate"],  # from 0.1
        ["2026-03-10", "1,010", "0.0900", "none"],  # below 0.1
    ]
    assert '<span class="badge badge-psi-significant">significant</span>' in html
    assert "0.9000" not in html  # the retired version's drift


def test_a_kind_without_versions_shows_empty_states(client, staff, ctr_models):
    client.force_login(staff)
    response = client.get(reverse("staff_models", args=["engagement"]))
    html = response.content.decode()
    assert "No engagement model has been trained yet" in html
    assert "No champion yet, so no reliability table." in html
    assert "No champion yet, so no lift table." in html
    assert "No champion yet, so no drift." in html
    assert "<canvas" not in html
    assert PageReader(html).tables == {}


def test_a_champion_without_reliability_or_drift_says_so(client, staff):
    version("engagement", 1, "champion", {"auc": 0.8})
    client.force_login(staff)
    html = client.get(reverse("staff_models", args=["engagement"])).content.decode()
    assert "The champion v1 has no reliability table in its metrics." in html
    assert "No drift measured yet for v1" in html
    assert PageReader(html).tables["versions"][1][6] == "0.8000"


def test_model_monitoring_queries_do_not_grow(client, staff, ctr_models, django_assert_num_queries):
    for number in range(4, 30):
        version("ctr", number, "retired", {"auc": 0.7})
    client.force_login(staff)
    # Session and user; the versions; the champion's drift.
    with django_assert_num_queries(4):
        assert client.get(reverse("staff_models", args=["ctr"])).status_code == 200
