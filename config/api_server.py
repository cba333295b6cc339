"""The `api` process (Procfile, docker-compose): config.wsgi's application (the integration
API: decisions, events, tracking links, ad tags) under config/wsgi_server.py's pre-forked
epoll server.

    python -m config.api_server [--host HOST] [--port PORT]
    HOST (default 127.0.0.1) and PORT (default 8001) when not given, WEB_CONCURRENCY (workers,
    default 2: one per core), API_LOOPS (each worker's loop threads, default 1:
    config/wsgi_server.py's docstring says why), API_THREADS (each worker's pool for requests
    that wait on the database, default 2), API_MAX_BODY_BYTES (default 16 MiB),
    API_KEEPALIVE_SECONDS (75), API_REQUEST_SECONDS (30: a request not complete, or an answer
    not read, in that time),
    API_GRACEFUL_SECONDS (30: at SIGTERM, the time a worker has to finish its requests),
    API_SERVER=granian for granian's WSGI server instead (the server before session 13, kept
    for comparison: bench/servers.py).

Why this server: decisions and ad tags run on the thread that read them, with no hand-off to
a request thread (config/wsgi_server.py's docstring; bench/servers.py measures it against
granian). Why WSGI for these at all: under ASGI every sync middleware and view runs through a
thread hop (sync_to_async), about 3 ms of CPU per request before the view. Pages and
WebSockets stay on the ASGI server (`web:`).

Each worker imports config.wsgi itself, so its refresher thread runs in the process that
serves (threads do not survive a fork). Threads live as long as the worker and keep their
database connections (DATABASE_CONN_MAX_AGE, which the ASGI server cannot: see
config/settings/django.py).
"""

from __future__ import annotations

import argparse
import logging
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m config.api_server")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))  # as `web:`
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8001")))
    options = parser.parse_args(argv)
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "60")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
    threads = int(os.environ.get("API_THREADS", "2"))
    if os.environ.get("API_SERVER", "") == "granian":
        _granian(options.host, options.port, workers, threads)
        return
    from config.wsgi_server import Limits, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s api %(levelname)s %(message)s")
    defaults = Limits()
    serve(
        "config.wsgi:application",
        "config.api_wsgi:inline",
        host=options.host,
        port=options.port,
        workers=workers,
        loops=int(os.environ.get("API_LOOPS", "1")),
        threads=threads,
        limits=Limits(
            max_head_bytes=defaults.max_head_bytes,
            max_body_bytes=int(os.environ.get("API_MAX_BODY_BYTES", defaults.max_body_bytes)),
            request_seconds=float(os.environ.get("API_REQUEST_SECONDS", defaults.request_seconds)),
            keepalive_seconds=float(
                os.environ.get("API_KEEPALIVE_SECONDS", defaults.keepalive_seconds)
            ),
            graceful_seconds=float(
                os.environ.get("API_GRACEFUL_SECONDS", defaults.graceful_seconds)
            ),
        ),
    )


def _granian(host: str, port: int, workers: int, threads: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        "config.wsgi:application",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
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
