"""`manage.py train_models`: every model now. It lives in analytics, the lowest app that may
import both trainers (ads' CTR model, engagement's model)."""

import time
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from ads.services import ctr_model_train
from config.progress import progress
from engagement.services import engagement_model_train, live_score_model_train
from ml import selectors as ml_selectors
from ml.models import ModelVersion
from ml.services import TrainingError


class Command(BaseCommand):
    help = (
        "Train the models now, with the code the nightly tasks run: the engagement model on "
        "ratings and viewing sessions, the live engagement score on finished sessions (cut at "
        "several moments), and the CTR model on the recent event table (the last "
        "day held out). A model is promoted only if it beats the champion; a failed training "
        "is recorded and leaves the champion as it was."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=14, help="CTR training window in days.")

    def handle(self, *args, days: int, **options) -> None:
        if days < 2:
            raise CommandError("--days must be at least 2 (the last day is held out).")
        started = time.perf_counter()
        trainers: dict[str, Callable[[], ModelVersion]] = {
            "engagement": engagement_model_train,
            # After the engagement model: its champion gives the live score its prior.
            "live_engagement": live_score_model_train,
            "ctr": lambda: ctr_model_train(window_days=days),
        }
        outcomes = []
        for kind, train in progress(trainers.items(), desc="training", unit="models"):
            try:
                version = train()
            except TrainingError as error:  # recorded as a failed run; the champion stays
                outcomes.append(f"{kind}: failed ({error})")
                continue
            champion = ml_selectors.champion_version(kind=kind)
            outcomes.append(
                f"{kind}: v{version.version} {version.status} "
                f"(AUC {version.metrics['auc']:.3f}); champion "
                f"{f'v{champion.version} {champion.algorithm}' if champion else 'none'}"
            )
        self.stdout.write(
            f"Trained in {time.perf_counter() - started:.1f} s. " + "; ".join(outcomes) + "."
        )
