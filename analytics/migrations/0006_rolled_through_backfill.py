"""The days rolled up before RolledThrough existed: marked as rolled through now, so their
reach counts every impression stored so far, as it did (without a mark, a range ending on such
a day would count no viewer)."""

from django.db import migrations
from django.utils import timezone


def _mark_rolled_days(apps, schema_editor):
    DailyDelivery = apps.get_model("analytics", "DailyDelivery")
    RolledThrough = apps.get_model("analytics", "RolledThrough")
    Advertiser = apps.get_model("ads", "Advertiser")
    now = timezone.now()
    days = (
        DailyDelivery.objects.filter(advertiser_id__in=Advertiser.objects.values("pk"))
        .values_list("advertiser_id", "day")
        .distinct()
    )
    RolledThrough.objects.bulk_create(
        [RolledThrough(advertiser_id=pk, day=day, rolled_at=now) for pk, day in days.iterator()],
        batch_size=5_000,
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [("analytics", "0005_rolled_through")]

    operations = [migrations.RunPython(_mark_rolled_days, migrations.RunPython.noop)]
