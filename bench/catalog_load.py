"""How long loading MovieLens-100k takes: the first load and the idempotent second one.

Runs against DATABASE_URL when it is set (PostgreSQL), else a throwaway SQLite file.
    python bench/catalog_load.py [PATH]     (default: ../shared/data/ml-100k)
"""

import os
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else BASE_DIR.parent / "shared/data/ml-100k")
    if not path.is_dir():
        print(f"skipped: no MovieLens folder at {path}")
        return
    scratch = tempfile.TemporaryDirectory()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{scratch.name}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    if connection.vendor == "postgresql":
        # Never load into a real database: a scratch one, dropped at the end.
        from django.test.utils import setup_databases, teardown_databases

        old_config = setup_databases(verbosity=0, interactive=False)
    else:
        call_command("migrate", verbosity=0)
    try:
        for run in ("first load", "second load (idempotent)"):
            started = time.perf_counter()
            with open(os.devnull, "w") as quiet:
                call_command("load_movielens", str(path), verbosity=0, stdout=quiet)
            print(f"{run:26s} {time.perf_counter() - started:6.2f} s  ({connection.vendor})")
    finally:
        if connection.vendor == "postgresql":
            teardown_databases(old_config, verbosity=0)
        scratch.cleanup()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _scratch

    print(_scratch.machine_reference(), flush=True)
    main()
