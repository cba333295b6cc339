"""The ad event table partitioned by day on PostgreSQL (SQLite keeps one plain table).

1. `decided_at`, the time of the event's decision (its token's issue time), becomes the
   partition key; rows stored before it existed take their `occurred_at` (within the token's
   life of the real decision, so the bounds `AdEvent.objects.occurred_between` relies on hold).
2. The idempotency key becomes (event_id, decided_at): a partitioned table's unique keys must
   hold its partition key, and every report of one event carries the same decision time.
3. PostgreSQL only: the table is rebuilt as `PARTITION BY RANGE (decided_at)`, with one
   partition per UTC day that has rows, and yesterday's to seven days ahead; its rows are
   copied over, the identity sequence carried on, then the old table dropped and its indexes
   made again, with their names, on the new one. The primary key becomes (id, decided_at);
   Django keeps `id` as the model's key, unique as one sequence fills it.

The SQL here is written out rather than taken from `ads.services.partitions`, so that this
migration does the same thing whatever that module later becomes.
"""

import datetime as dt

from django.db import migrations, models

TABLE = "ads_adevent"
OLD = "ads_adevent_unpartitioned"
AHEAD_DAYS = 7


def _indexes(cursor, table):
    """CREATE INDEX statements of `table`'s indexes that back no constraint."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    return [definition for (definition,) in cursor.fetchall()]


def _identity_to(cursor, table, source):
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
        f"COALESCE((SELECT MAX(id) FROM {source}), 0) + 1, false)"
    )


def _swap(schema_editor, *, partitioned):
    """Rebuild the event table, partitioned or plain, keeping its rows, ids and indexes."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        indexes = _indexes(cursor, OLD)
        like = f"LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING STORAGE"
        if partitioned:
            cursor.execute(f"CREATE TABLE {TABLE} ({like}) PARTITION BY RANGE (decided_at)")
            cursor.execute(
                f"SELECT DISTINCT (decided_at AT TIME ZONE 'UTC')::date FROM {OLD} "
                "UNION SELECT generate_series(-1, %s) + (now() AT TIME ZONE 'UTC')::date",
                [AHEAD_DAYS],
            )
            for (day,) in sorted(cursor.fetchall()):
                start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
                cursor.execute(
                    f"CREATE TABLE {TABLE}_p{day:%Y%m%d} PARTITION OF {TABLE} "
                    "FOR VALUES FROM (%s) TO (%s)",
                    [start, start + dt.timedelta(days=1)],
                )
        else:
            cursor.execute(f"CREATE TABLE {TABLE} ({like})")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        _identity_to(cursor, TABLE, OLD)
        cursor.execute(f"DROP TABLE {OLD}")  # its partitions too, when it had them
        key = "id, decided_at" if partitioned else "id"
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({key})")
        cursor.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT adevent_unique_event_id_decided_at "
            "UNIQUE (event_id, decided_at)"
        )
        for definition in indexes:
            # A partitioned table's index is defined ON ONLY it: made again on all of the table.
            on = f" ON ONLY public.{OLD} " if f" ON ONLY public.{OLD} " in definition else None
            on = on or f" ON public.{OLD} "
            cursor.execute(definition.replace(on, f" ON public.{TABLE} "))
        cursor.execute(f"ANALYZE {TABLE}")


def partition(apps, schema_editor):
    _swap(schema_editor, partitioned=True)


def unpartition(apps, schema_editor):
    _swap(schema_editor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("ads", "0005_account_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="adevent",
            name="decided_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunSQL(
            "UPDATE ads_adevent SET decided_at = occurred_at", reverse_sql=migrations.RunSQL.noop
        ),
        migrations.AlterField(
            model_name="adevent",
            name="decided_at",
            field=models.DateTimeField(),
        ),
        migrations.RemoveConstraint(
            model_name="adevent",
            name="adevent_unique_event_id",
        ),
        migrations.AddConstraint(
            model_name="adevent",
            constraint=models.UniqueConstraint(
                fields=("event_id", "decided_at"), name="adevent_unique_event_id_decided_at"
            ),
        ),
        migrations.RunPython(partition, unpartition),
    ]
