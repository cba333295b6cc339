"""Starts the browser tests' servers without paying for their imports and Django's setup each
time.

A fresh Python importing config.asgi spends about 1.4 s of CPU: the libraries (pandas, uvicorn,
psycopg, Django's and DRF's own modules; openai, which the insights pages import when they ask
the LLM), then Django's setup from the settings (the apps, their models, the URLs and the views
they import). This process imports the libraries once, before any settings exist (no
DJANGO_SETTINGS_MODULE: one that read a setting would fail here), then waits on stdin.

For the first server a test asks for with a given environment (and working directory), it forks
a *template* of that environment: a process that sets the environment and does what importing
config.asgi does before it touches the database (Django's setup from the settings, the
middleware's, the URLs' and the routing's imports), then waits for requests of its own. Each
server with that environment is forked from its template: the child runs `uvicorn` as `python
-m uvicorn` would, so it imports config.asgi, whose Django setup is then already done, and the
server opens the test's database, builds its decision index from it and starts its threads, all
in the child. A server of another environment (a test that sets a variable of its own) gets a
template of its own; at most TEMPLATES are kept. The tests give every server of a worker one
DATABASE_URL (tests/browser/conftest.py), so most share one template. Nothing in a template
opens a database connection, starts a thread or reads a file a test writes: what it holds is
what every server would have computed alike from that environment.

One request per line on stdin, one JSON answer per line on stdout:
  {"start": {"argv": [...uvicorn's arguments], "env": {...}, "cwd": "...", "log": "..."}}
      → {"pid": <the server's pid>}
  {"poll": <pid>} → {"status": null while it runs, else its wait status}
  {"stop": <pid>} → {"cpu_s": <the server's CPU, user + system>, "status": <its wait status>}
At the end of stdin the servers still running are killed, the templates end, and the process
exits. A template answers the same requests (from this process, over a pipe); if its setup
fails, the server is forked from this process instead, and sets Django up itself (its log then
says what failed).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO

STOP_SECONDS = 10
# Environments kept ready; beyond that, the template that forked the fewest servers ends (a
# test's own environment, used once, before the one most tests share).
TEMPLATES = 2

# Pipe ends to the templates, held by this process: every process forked from here closes
# them, so that a template sees the end of its requests when this process closes its end.
_held: set[int] = set()


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


def _set_up_django() -> None:
    """In a template: what importing config.asgi does before server_start() (which reads the
    database and starts the refresher's thread): Django's setup from the settings, then the
    imports of the middleware, the URLs (and their views) and the WebSocket routing."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections
    from django.urls import get_resolver
    from django.utils.module_loading import import_string

    for middleware in settings.MIDDLEWARE:
        import_string(middleware)
    get_resolver().url_patterns  # noqa: B018  (the property imports the URL modules)
    import channels.security.websocket  # noqa: F401

    import ads.services  # noqa: F401
    import config.routing  # noqa: F401

    # Every server opens its own connection: none may be inherited.
    assert not any(each.connection for each in connections.all(initialized_only=True)), "connected"


def _forked() -> int:
    """os.fork(), after which the child closes the pipe ends it must not hold."""
    # Forking copies one thread only: nothing may run in another when a process is forked.
    assert threading.active_count() == 1, threading.enumerate()
    pid = os.fork()
    if pid == 0:
        for fd in _held:
            with contextlib.suppress(OSError):
                os.close(fd)
        _held.clear()
    return pid


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


class Servers:
    """The servers forked from this process: start, poll, stop (the protocol above)."""

    def __init__(self) -> None:
        self.running: dict[int, dict | None] = {}  # pid → how it ended, once it has

    def answer(self, request: dict) -> dict:
        if "start" in request:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = _forked()
            if pid == 0:
                _serve_in_child(request["start"])
            self.running[pid] = None
            return {"pid": pid}
        if "poll" in request:
            pid = request["poll"]
            self.running[pid] = self.running[pid] or _ended(pid)
            return {"status": self.running[pid] and self.running[pid]["status"]}
        pid = request["stop"]
        return _stop(pid, self.running.pop(pid))

    def close(self) -> None:
        for pid, ended in self.running.items():
            _stop(pid, ended)
        self.running.clear()


def _loop(requests: Iterable[str], answers: IO[str], servers: Servers) -> None:
    try:
        for line in requests:
            answers.write(json.dumps(servers.answer(json.loads(line))) + "\n")
            answers.flush()
    finally:
        servers.close()


class Template:
    """A process forked from this one with an environment set and Django set up in it (see the
    module's docstring), which forks that environment's servers."""

    def __init__(self, env: dict, cwd: str) -> None:
        to_template, self.to_us = os.pipe()
        self.from_template, from_us = os.pipe()
        self.pid = _forked()
        if self.pid == 0:
            try:
                os.close(self.to_us)
                os.close(self.from_template)
            finally:
                self._run(env, cwd, os.fdopen(to_template), os.fdopen(from_us, "w"))
        os.close(to_template)
        os.close(from_us)
        _held.update((self.to_us, self.from_template))  # not for the processes forked later
        self.requests = os.fdopen(self.to_us, "w")
        self.answers = os.fdopen(self.from_template)
        self.servers: set[int] = set()  # those still running
        self.forked = 0
        ready = json.loads(self.answers.readline() or '{"error": "the template exited"}')
        self.error = ready.get("error")

    @staticmethod
    def _run(env: dict, cwd: str, requests: IO[str], answers: IO[str]) -> None:
        """The template itself. Never returns."""
        code = 0
        try:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # this process's pipes to the tests are not its to use
                os.dup2(null, fd)
            os.close(null)
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            try:
                _set_up_django()
            except BaseException:  # noqa: BLE001 - said to the fork server, which goes on
                import traceback

                answers.write(json.dumps({"error": traceback.format_exc()}) + "\n")
                answers.flush()
                os._exit(1)
            gc.collect()
            gc.freeze()  # what the servers inherit stays out of their collections' way
            answers.write(json.dumps({"ready": True}) + "\n")
            answers.flush()
            _loop(requests, answers, Servers())
        except BaseException:  # noqa: BLE001 - the template must never return into the loop
            code = 1
        os._exit(code)

    def ask(self, request: dict) -> dict:
        self.requests.write(json.dumps(request) + "\n")
        self.requests.flush()
        return json.loads(self.answers.readline())

    def close(self) -> None:
        """The end of its requests: it stops its servers and exits."""
        for file in (self.requests, self.answers):
            with contextlib.suppress(OSError):
                file.close()
        _held.difference_update({self.to_us, self.from_template})
        os.waitpid(self.pid, 0)


class ForkServer(Servers):
    """This process: each server from its environment's template (made on the first request
    of that environment), or from here when the template's setup failed."""

    def __init__(self) -> None:
        super().__init__()
        self.templates: dict[str, Template] = {}  # least recently used first (sorted's ties)
        self.owner: dict[int, Template] = {}  # a server's pid → the template that forked it

    def answer(self, request: dict) -> dict:
        if "start" in request:
            template = self._template(request["start"])
            if template is None:
                return super().answer(request)
            answer = template.ask(request)
            self.owner[answer["pid"]] = template
            template.servers.add(answer["pid"])
            return answer
        pid = request.get("poll", request.get("stop"))
        template = self.owner.get(pid)
        if template is None:
            return super().answer(request)
        if "stop" in request:
            del self.owner[pid]
            template.servers.discard(pid)
        return template.ask(request)

    def _template(self, start: dict) -> Template | None:
        key = json.dumps([start["env"], start["cwd"]], sort_keys=True)
        template = self.templates.pop(key, None)
        if template is None:
            idle = [old for old in self.templates.items() if not old[1].servers]
            for old_key, old in sorted(idle, key=lambda item: item[1].forked):
                if len(self.templates) < TEMPLATES:
                    break
                old.close()
                del self.templates[old_key]
            template = Template(start["env"], start["cwd"])
        self.templates[key] = template  # the most recently used, last
        template.forked += 1
        return None if template.error else template

    def close(self) -> None:
        super().close()
        for template in self.templates.values():
            template.close()  # it stops its servers
        self.templates.clear()


def main() -> None:
    _preload()
    gc.collect()
    gc.freeze()  # what the templates and the servers inherit stays out of their collections' way
    _loop(sys.stdin, sys.stdout, ForkServer())


if __name__ == "__main__":
    main()
