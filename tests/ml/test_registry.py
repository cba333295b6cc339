"""Promotion and refusal, rollback, serving reloads after a promotion."""

import datetime as dt

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from ml import metrics, services, serving
from ml.models import ModelVersion

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 10)
# A 2 % base rate: predicting it scores AUC 0.5 and log loss 0.0980 (its entropy).
GOOD = {"auc": 0.75, "log_loss": 0.090, "calibration_ratio": 1.02, "base_rate": 0.02}


class Constant:
    """A stand-in model object: what it predicts does not matter to the registry."""

    def __init__(self, value: float) -> None:
        self.value = value


def register(metrics, champion_metrics=None, value=0.1, kind="ctr"):
    return services.model_version_register(
        kind=kind,
        model=Constant(value),
        algorithm="test",
        metrics=metrics,
        feature_spec={"features": ["a"]},
        train_rows=100,
        holdout_rows=10,
        champion_metrics=champion_metrics,
    )


@pytest.fixture(autouse=True)
def _fresh_serving():
    serving.champions.reset()
    yield
    serving.champions.reset()


def test_the_first_calibrated_model_that_beats_the_base_rate_becomes_champion():
    first = register(GOOD)
    assert (first.version, first.status) == (1, "champion")
    # 0.99 × entropy(0.02) = 0.99 × 0.098039 = 0.097059.
    assert first.decision == (
        "Calibrated, and better than predicting the base rate 0.0200: AUC 0.7500 ≥ 0.52 and "
        "log loss 0.0900 ≤ 0.0971."
    )


def _holdout(rows: int = 4000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Held-out labels drawn from known probabilities (a 10 % rate on average)."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(1, 9, rows)
    return (rng.random(rows) < truth).astype(int), truth


def test_a_first_model_that_predicts_the_base_rate_is_refused():
    labels, _ = _holdout()
    constant = np.full(len(labels), labels.mean())  # calibrated by construction
    found = metrics.summary(labels, constant)
    assert (found["auc"], found["calibration_ratio"]) == (0.5, pytest.approx(1.0))
    version = register(found)
    assert version.status == "candidate"
    assert version.decision.startswith("AUC 0.5000 is below 0.52: no better than predicting")
    assert not ModelVersion.objects.filter(status="champion").exists()


def test_a_first_model_that_knows_the_probabilities_is_promoted():
    labels, truth = _holdout()
    found = metrics.summary(labels, truth)
    assert found["auc"] > 0.65  # the beta(1, 9) spread is real skill, far above the margin
    assert found["normalized_entropy"] < 0.95
    assert register(found).status == "champion"


@pytest.mark.parametrize(
    ("change", "promoted", "reason"),
    [
        ({"auc": 0.52}, True, "Calibrated"),  # the margins are inclusive
        ({"auc": 0.5199}, False, "AUC 0.5199 is below 0.52"),
        ({"log_loss": 0.0970}, True, "Calibrated"),
        ({"log_loss": 0.0972}, False, "Log loss 0.0972 is above 0.0971 (0.99 × its entropy)"),
        ({"calibration_ratio": 1.2}, False, "Calibration ratio 1.200 is outside 0.9–1.1."),
    ],
)
def test_a_first_model_must_clear_the_no_skill_margins(change, promoted, reason):
    version = register(GOOD | change)
    assert version.status == ("champion" if promoted else "candidate")
    assert version.decision.startswith(reason)


def test_a_champion_that_cannot_score_the_rows_leaves_the_candidate_to_the_base_rate_rule():
    register(GOOD)
    no_skill = register(GOOD | {"auc": 0.51})  # no champion_metrics: not compared
    assert no_skill.status == "candidate"
    assert no_skill.decision.startswith(
        "Champion v1 did not score these held-out rows. AUC 0.5100 is below 0.52"
    )
    skilful = register(GOOD)
    assert skilful.status == "champion"
    assert skilful.decision.startswith("Champion v1 did not score these held-out rows. Calib")


def test_a_miscalibrated_model_stays_a_candidate():
    version = register(GOOD | {"calibration_ratio": 1.2})
    assert version.status == "candidate"
    assert version.decision == "Calibration ratio 1.200 is outside 0.9–1.1."


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (GOOD | {"auc": 0.74}, "AUC 0.7400 is lower than the champion's 0.7500"),
        (GOOD | {"log_loss": 0.090}, "Log loss 0.0900 is not lower than the champion's 0.0900"),
    ],
)
def test_a_challenger_must_beat_the_champion_on_the_same_window(candidate, reason):
    champion = register(GOOD)
    challenger = register(candidate, champion_metrics=GOOD)
    assert challenger.status == "candidate"
    assert challenger.decision.startswith(reason)
    assert challenger.challenged == champion
    champion.refresh_from_db()
    assert champion.status == "champion"


def test_a_better_challenger_takes_over_and_the_old_champion_retires():
    champion = register(GOOD)
    challenger = register(GOOD | {"auc": 0.76, "log_loss": 0.089}, champion_metrics=GOOD)
    champion.refresh_from_db()
    assert (challenger.version, challenger.status, champion.status) == (2, "champion", "retired")


def test_rollback_restores_the_previous_champion():
    first = register(GOOD)
    register(GOOD | {"log_loss": 0.08}, champion_metrics=GOOD)
    restored = services.model_version_rollback(kind="ctr")
    assert restored == first
    assert list(ModelVersion.objects.filter(status="champion")) == [first]
    assert restored.decision == "Rolled back from v2."


def test_rollback_without_an_earlier_champion_is_refused():
    register(GOOD)
    with pytest.raises(ValidationError, match="No earlier ctr champion"):
        services.model_version_rollback(kind="ctr")


def test_serving_reloads_after_a_promotion(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(serving, "CHECK_SECONDS", 0.0)
    assert serving.champion("ctr") is None
    with django_capture_on_commit_callbacks(execute=True):
        register(GOOD, value=0.1)
    assert serving.champion("ctr").model.value == 0.1
    with django_capture_on_commit_callbacks(execute=True):
        register(GOOD | {"log_loss": 0.05}, champion_metrics=GOOD, value=0.2)
    loaded = serving.champion("ctr")
    assert (loaded.version, loaded.model.value) == (2, 0.2)
    with django_capture_on_commit_callbacks(execute=True):
        services.model_version_rollback(kind="ctr")
    assert serving.champion("ctr").model.value == 0.1


def test_serving_loads_once_while_the_champion_stays(django_assert_num_queries, monkeypatch):
    register(GOOD)
    monkeypatch.setattr(serving, "CHECK_SECONDS", 0.0)
    serving.champion("ctr")
    with django_assert_num_queries(0):
        for _ in range(5):
            assert serving.champion("ctr").version == 1


def test_staff_promote_and_roll_back_in_admin_with_a_confirmation(client):
    first = register(GOOD)
    second = register(GOOD | {"auc": 0.70}, champion_metrics=GOOD)
    client.force_login(User.objects.create_superuser("staff", "s@example.com", "pw"))
    url = "/admin/ml/modelversion/"
    form = {"action": "promote", "_selected_action": [second.pk]}
    confirm_page = client.post(url, form)
    assert confirm_page.status_code == 200
    assert "Make ctr v2 (candidate) the ctr champion?" in confirm_page.content.decode()
    second.refresh_from_db()
    assert second.status == "candidate"  # nothing happens before the confirmation
    client.post(url, form | {"confirm": "yes"})
    second.refresh_from_db()
    assert second.status == "champion"
    client.post(url, {"action": "roll_back", "_selected_action": [second.pk], "confirm": "yes"})
    first.refresh_from_db()
    assert first.status == "champion"


def test_drift_is_measured_against_the_training_windows_scores():
    rng = np.random.default_rng(1)
    training = rng.beta(2, 60, 50_000)
    version = register(GOOD | {"reference_scores": services.reference_scores(training)})
    assert len(version.metrics["reference_scores"]) == services.REFERENCE_QUANTILES
    same = services.drift_record(model_version=version, day=DAY, scores=rng.beta(2, 60, 5_000))
    assert same.psi < 0.02
    shifted = services.drift_record(model_version=version, day=DAY, scores=rng.beta(5, 60, 5_000))
    assert shifted.pk == same.pk  # the day's figure is replaced, not added
    assert shifted.psi > 0.25 and shifted.rows == 5_000


def test_drift_needs_reference_scores():
    version = register(GOOD)
    with pytest.raises(ValidationError, match="no reference scores"):
        services.drift_record(model_version=version, day=DAY, scores=[0.1, 0.2])


def test_an_unreadable_champion_is_served_as_no_model(caplog):
    version = register(GOOD)
    ModelVersion.objects.filter(pk=version.pk).update(artifact=b"not a model")
    serving.champions.reset()
    assert serving.champion("ctr") is None
    assert "The ctr champion v1 cannot be loaded." in caplog.text
