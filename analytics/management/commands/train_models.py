import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ads.learning.training import ctr_model_retrain
from engagement.learning import EngagementTrainingError
from engagement.services import engagement_model_train
from ml.models import ModelVersion, TrainingRun


class Command(BaseCommand):
    help = (
        "Train the models now, with the code the nightly tasks run: the engagement model on "
        "ratings and viewing sessions, and the CTR model on the recent event table (the last "
        "day held out). A model is promoted only if it beats the champion; a failed training "
        "is recorded and leaves the champion as it was."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=14, help="CTR training window in days.")

    @staticmethod
    def _engagement() -> ModelVersion | None:
        try:
            return engagement_model_train()
        except EngagementTrainingError:
            return None  # recorded as a failed run, shown in the summary

    def handle(self, *args, days: int, **options) -> None:
        if days < 2:
            raise CommandError("--days must be at least 2 (the last day is held out).")
        started = time.perf_counter()
        jobs = {
            "engagement": self._engagement,
            "ctr": lambda: ctr_model_retrain(days=days),
        }
        outcomes = []
        for kind, train in tqdm(jobs.items(), desc="models", disable=None):
            version = train()
            run = TrainingRun.objects.filter(kind=kind).order_by("-started_at").first()
            if version is None:
                outcomes.append(f"{kind}: failed ({run.error if run else 'see the log'})")
                continue
            champion = ModelVersion.objects.filter(
                kind=kind, status=ModelVersion.Status.CHAMPION
            ).first()
            outcomes.append(
                f"{kind}: v{version.version} {version.status} "
                f"(AUC {version.metrics['auc']:.3f}); champion "
                f"{f'v{champion.version} {champion.algorithm}' if champion else 'none'}"
            )
        self.stdout.write(
            f"Trained in {time.perf_counter() - started:.1f} s. " + "; ".join(outcomes) + "."
        )
