import django.utils.timezone
from django.db import migrations, models


def _sum_again(apps, schema_editor):
    """Totals cut by decision time cannot say which event ids they hold: dropped, the beat
    task sums the table again (until then a rebuild reads the whole table)."""
    for name in ("EventTotalMark", "EventTotal", "EventDayTotal"):
        apps.get_model("ads", name).objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('ads', '0009_event_totals'),
    ]

    operations = [
        migrations.RunPython(_sum_again, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='eventtotalmark',
            name='covered_before',
        ),
        migrations.AddField(
            model_name='eventtotalmark',
            name='covered_through',
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name='eventtotalmark',
            name='seen_through',
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='eventtotalmark',
            name='seen_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name='eventtotalmark',
            name='days_from',
            field=models.DateField(null=True),
        ),
    ]
