"""gunicorn settings of the `api` process (Procfile): the integration API (decisions, events,
tracking links) under WSGI.

Why WSGI for these: under ASGI every sync middleware and view runs through a thread hop
(sync_to_async), about 3 ms of CPU per request before the view, more than the decision
itself. gthread workers run the request on the thread that read it, keep connections alive
for players that send one decision after another, and keep a database connection per thread.
Pages and WebSockets stay on the ASGI server (`web:`).

    gunicorn config.wsgi:application -c config/gunicorn.py
    PORT (default 8001), WEB_CONCURRENCY (workers, default 2: one per core), GUNICORN_CMD_ARGS
"""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8001')}"  # as `web:` does; GUNICORN_CMD_ARGS=--bind
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
# A decision waits on Redis for a round trip; a second thread uses the core meanwhile. On 2
# cores one thread a worker measured slower at 8 and 32 connections, four no faster.
threads = 2
# Players and SSAI servers keep their connection open between decisions.
keepalive = 75
backlog = 2048
accesslog = None
# gunicorn's control socket lives at one path per user (~/.gunicorn): not for several servers.
control_socket_disable = True
# Threads live as long as the worker: keep their database connections (the ASGI server
# cannot, see config/settings/django.py).
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "60")
