"""The suite builds its databases from the models (--no-migrations, pyproject.toml): the
migrations must make the same schema, or the demo and production would differ from the
tests."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_migrations_match_the_models(settings):
    settings.MIGRATION_MODULES = {}  # the real ones: --no-migrations hides them from the loader
    output = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=output)
    except SystemExit:
        pytest.fail("Models changed without a migration:\n" + output.getvalue())
