"""setup_demo: make demo's set-up in one process, with each step's seconds and the total."""

import re
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from ads.models import AdEvent
from analytics.models import DailyDelivery
from catalog.models import Title
from ml.models import TrainingRun

pytestmark = pytest.mark.django_db

STEPS = ["migrate", "seed_demo", "simulate_traffic", "rollup", "train_models"]


@pytest.fixture(autouse=True)
def _synthetic_catalog(monkeypatch):
    monkeypatch.delenv("MOVIELENS_PATH", raising=False)


def test_setup_demo_runs_every_step_and_ends_with_their_times_and_the_logins(tmp_path):
    out = StringIO()
    logins = tmp_path / "logins.txt"
    since = time.time() - 100  # as if make had begun 100 s ago (installing)

    call_command(
        "setup_demo", days=1, viewers=40, seed=3, since=since, logins_out=logins, stdout=out
    )

    text = out.getvalue()
    assert [line[3:] for line in text.splitlines() if line.startswith("== ")] == STEPS
    summary = text[text.index("Set-up times (s):") :]
    seconds = dict(re.findall(r"^  (.+?) +(\d+\.\d)$", summary, flags=re.MULTILINE))
    assert list(seconds) == ["before (install)", *STEPS, "total"]
    assert float(seconds["before (install)"]) >= 100
    steps = sum(float(seconds[step]) for step in STEPS)
    assert float(seconds["total"]) >= steps + 100 - 0.05 * len(STEPS)  # each rounded
    # The world, its history, the rollups and a training run are there.
    assert Title.objects.count() == 300
    assert AdEvent.objects.filter(event_type="impression").exists()
    assert DailyDelivery.objects.exists()
    # A day of 40 viewers is too little to train on: each training is tried and recorded.
    assert set(TrainingRun.objects.values_list("kind", flat=True)) == {
        "ctr",
        "engagement",
        "live_engagement",
    }
    # The logins end the output and are in the file too.
    assert "interlude-demo" in logins.read_text()
    assert text.rstrip().endswith(logins.read_text().strip().splitlines()[-1])


def test_setup_demo_refuses_an_empty_history():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("setup_demo", days=0, stdout=StringIO())
