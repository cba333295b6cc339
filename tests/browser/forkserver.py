"""Starts the browser tests' servers without paying for their imports each time.

A fresh Python importing config.asgi spends about 1.4 s of CPU, most of it in modules that read
no setting when imported (pandas, uvicorn, psycopg, Django's and DRF's own; openai, which the
insights pages import when they ask the LLM). This process imports those once, before any
settings exist (no DJANGO_SETTINGS_MODULE: one that read a setting would fail here), then waits
on stdin; for each server a test asks for it forks, and the child sets the test's environment
and runs `uvicorn` as `python -m uvicorn` would: Django, the settings, the apps and the server start
from nothing in the child, as in a fresh process.

One request per line on stdin, one JSON answer per line on stdout:
  {"start": {"argv": [...uvicorn's arguments], "env": {...}, "cwd": "...", "log": "..."}}
      → {"pid": <the server's pid>}
  {"poll": <pid>} → {"status": null while it runs, else its wait status}
  {"stop": <pid>} → {"cpu_s": <the server's CPU, user + system>, "status": <its wait status>}
At the end of stdin the servers still running are killed and the process exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time

STOP_SECONDS = 10


def _preload() -> None:
    """What config.asgi imports that reads no setting on import (each checked without
    DJANGO_SETTINGS_MODULE): third-party libraries, and Django's and DRF's own modules. Not
    LightGBM, scikit-learn or SciPy: the servers import them only to train or to unpickle a
    champion, which no browser test's server does (2 s of CPU a worker saved)."""
    import celery  # noqa: F401
    import channels.auth  # noqa: F401
    import channels.routing  # noqa: F401
    import channels_redis.pubsub  # noqa: F401
    import django.contrib.admin  # noqa: F401
    import django.contrib.postgres.forms  # noqa: F401
    import django.core.handlers.asgi  # noqa: F401
    import django.db.models  # noqa: F401
    import django.forms  # noqa: F401
    import django.template.loader  # noqa: F401
    import django.urls  # noqa: F401
    import openai  # noqa: F401
    import pandas  # noqa: F401
    import psycopg  # noqa: F401
    import redis.asyncio  # noqa: F401
    import rest_framework.serializers  # noqa: F401
    import uvicorn.main  # noqa: F401
    import uvicorn.protocols.http.auto  # noqa: F401  (what --http auto and --ws auto choose)
    import uvicorn.protocols.websockets.auto  # noqa: F401


def _serve_in_child(request: dict) -> None:
    """The child: a session of its own (as subprocess's start_new_session), output to the log,
    the test's environment, then uvicorn's command line. Never returns."""
    try:
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from uvicorn.main import main

        main(request["argv"], prog_name="uvicorn")  # exits (SystemExit)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except BaseException:  # noqa: BLE001 - the child must never return into the loop
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _ended(pid: int, *, block: bool = False) -> dict | None:
    waited, status, usage = os.wait4(pid, 0 if block else os.WNOHANG)
    if not waited:
        return None
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "status": status}


def _stop(pid: int, ended: dict | None) -> dict:
    """SIGTERM to the server's session, SIGKILL after STOP_SECONDS; its CPU from wait4."""
    if ended:
        return ended
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while not (ended := _ended(pid)):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            return _ended(pid, block=True)
        time.sleep(0.02)
    return ended


def main() -> None:
    _preload()
    # Forking copies one thread only: nothing may run in another when a server is forked.
    assert threading.active_count() == 1, threading.enumerate()
    running: dict[int, dict | None] = {}  # pid → how it ended, once it has
    answers = sys.stdout
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if "start" in request:
                answers.flush()
                pid = os.fork()
                if pid == 0:
                    _serve_in_child(request["start"])
                running[pid] = None
                answer = {"pid": pid}
            elif "poll" in request:
                pid = request["poll"]
                running[pid] = running[pid] or _ended(pid)
                answer = {"status": running[pid] and running[pid]["status"]}
            else:
                pid = request["stop"]
                answer = _stop(pid, running.pop(pid))
            answers.write(json.dumps(answer) + "\n")
            answers.flush()
    finally:
        for pid, ended in running.items():
            _stop(pid, ended)


if __name__ == "__main__":
    main()
