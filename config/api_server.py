"""The `api` process (Procfile, docker-compose): granian serving config.wsgi's application (the
integration API: decisions, events, tracking links, ad tags) under WSGI.

    python -m config.api_server [--host HOST] [--port PORT]
    HOST (default 127.0.0.1) and PORT (default 8001) when not given, WEB_CONCURRENCY (workers,
    default 2: one per core), API_THREADS (threads a worker runs the application on, default 2)

Why granian rather than gunicorn: the HTTP work (reading and parsing requests, keep-alive,
writing answers) is Rust, off the GIL; gunicorn's gthread worker does it in Python, which cost
about as much CPU as the decision itself (bench/decisions.py, the same run: ~27 % less server
CPU per decision with granian). Why WSGI for these at all: under ASGI every sync middleware and
view runs through a thread hop (sync_to_async), about 3 ms of CPU per request before the view.
Pages and WebSockets stay on the ASGI server (`web:`).

Each worker imports config.wsgi itself, so its refresher thread runs in the process that serves
(threads do not survive a fork). A decision waits on Redis for a round trip; a second thread
uses the core meanwhile. Threads live as long as the worker and keep their database connections
(DATABASE_CONN_MAX_AGE, which the ASGI server cannot: see config/settings/django.py).
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m config.api_server")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))  # as `web:`
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8001")))
    options = parser.parse_args(argv)
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "60")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "config.wsgi:application",
        address=options.host,
        port=options.port,
        interface=Interfaces.WSGI,
        workers=int(os.environ.get("WEB_CONCURRENCY", "2")),
        blocking_threads=int(os.environ.get("API_THREADS", "2")),
        # Threads (and their database connections) live as long as the worker.
        blocking_threads_idle_timeout=600,
        websockets=False,
        # Players and SSAI servers keep their connection open between decisions.
        backlog=2048,
        respawn_failed_workers=True,  # as gunicorn's arbiter does
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
