"""A WSGI application for tests/config/test_wsgi_server.py, served by config/wsgi_server.py in
a process of its own: it answers what it was asked, and on which thread it ran."""

import os
import sys
import threading
import time

import orjson

# An import as slow as Django's may be, for the test that kills the master meanwhile.
time.sleep(float(os.environ.get("WSGI_APPS_IMPORT_SECONDS", "0")))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith(("/slow", "/inline/slow")):
        time.sleep(float(environ["QUERY_STRING"] or "0.3"))
    if path == "/fail":
        raise RuntimeError("the application failed")
    if path == "/inline/exit":
        sys.exit(3)
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"bye"]
    if path.endswith("/euro"):  # a header that is not Latin-1: PEP 3333 misuse
        start_response("200 OK", [("X-Name", "\u20ac")])
        return [b"ok"]
    if path == "/empty":
        start_response("204 No Content", [])
        return [b"ignored"]
    body = environ["wsgi.input"].read()
    answer = orjson.dumps(
        {
            "method": environ["REQUEST_METHOD"],
            "path": path,
            "query": environ["QUERY_STRING"],
            "protocol": environ["SERVER_PROTOCOL"],
            "content_length": environ.get("CONTENT_LENGTH"),
            "content_type": environ.get("CONTENT_TYPE"),
            "body": body.decode("latin-1"),
            "headers": {key: value for key, value in environ.items() if key.startswith("HTTP_")},
            "remote": environ["REMOTE_ADDR"],
            "thread": threading.current_thread().name,
            "pid": os.getpid(),
        }
    )
    # Without Content-Length: the server counts it.
    start_response("200 OK", [("Content-Type", "application/json")])
    return [answer[:10], answer[10:]]


def inline(path: str) -> bool:
    return path.startswith("/inline")
