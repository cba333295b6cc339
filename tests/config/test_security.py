"""What the browser is told to enforce (config/settings/security.py): a Content-Security-Policy
on every page with no inline script or eval allowed, and none of the templates relying on one;
HTTPS (redirect, HSTS, secure cookies) when DJANGO_DEBUG=false; the proxy's header trusted only
when configured; `manage.py check --deploy` clean. Settings cases run in a fresh interpreter,
as settings are read once per process. The pages passing the policy in a real browser:
tests/browser/test_content_security_policy.py."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

BASE_DIR = Path(__file__).resolve().parents[2]
TEMPLATES = BASE_DIR / "templates"
SECRET = "s3cr3t-" + "k9Qz7LmWv2Xr" * 5  # 50+ characters, many distinct: passes security.W009
# The variables these cases set themselves, dropped from the environment they inherit.
OWN = {
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_SECURE_HSTS_SECONDS",
    "DJANGO_SECURE_PROXY_SSL_HEADER",
    "DJANGO_SECURE_COOKIES",
}
PRINT_SECURITY = """
import json
from django.conf import settings
print(json.dumps({
    "redirect": settings.SECURE_SSL_REDIRECT,
    "hsts": settings.SECURE_HSTS_SECONDS,
    "proxy_header": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
    "secure_cookies": settings.SESSION_COOKIE_SECURE,
}))
"""


def run(arguments: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in OWN}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=BASE_DIR,
        env=clean | {"DJANGO_SETTINGS_MODULE": "config.settings"} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production(**env: str) -> dict[str, str]:
    return {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": SECRET} | env


def security_settings(**env: str) -> dict:
    result = run(["-c", PRINT_SECURITY], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/watch/", "/api/docs/", "/vast/try/"])
def test_every_page_carries_a_policy_that_runs_only_this_sites_files(client, path):
    response = client.get(path, follow=True)
    assert response.status_code == 200
    directives = policy(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]  # no <style> elements
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    # The live dashboards' sockets, on the host the page came from (the test client's).
    assert directives["connect-src"] == ["'self'", "ws://testserver", "wss://testserver"]


@pytest.mark.django_db
def test_the_api_docs_script_is_a_file_not_inline(client):
    page = client.get("/api/docs/").content.decode()
    assert "<style" not in page
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert inline == []
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert b"SwaggerUIBundle(" in script.content


# What the policy refuses, as it could appear in a template. <script type="application/json">
# (json_script: data, never run) is allowed; so are style attributes (style-src-attr).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"\s(?:hx-)?on[a-z:-]*\s*=", re.I)
SCRIPT_URL = re.compile(r"javascript:", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)


def test_no_template_has_inline_script_handlers_or_style_elements():
    found = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        # Template comments ({# … #}, one line each) may name what they avoid.
        text = re.sub(r"\{#.*?#\}", "", template.read_text())
        for name, pattern in {
            "inline <script>": INLINE_SCRIPT,
            "event handler attribute": EVENT_HANDLER,
            "javascript: URL": SCRIPT_URL,
            "<style> element": STYLE_ELEMENT,
        }.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{template.relative_to(BASE_DIR)}:{line}: {name}")
    assert found == []


def test_the_audit_patterns_catch_what_they_look_for():
    assert INLINE_SCRIPT.search('<script type="module">import "x";</script>')
    assert not INLINE_SCRIPT.search('<script src="/static/js/x.js" defer></script>')
    assert not INLINE_SCRIPT.search('<script id="c" type="application/json">{}</script>')
    assert EVENT_HANDLER.search('<button onclick="go()">')
    assert EVENT_HANDLER.search('<div hx-on::before-swap="x()">')
    assert not EVENT_HANDLER.search('<button data-action="toggle">')


def test_debug_off_turns_https_on_and_trusts_no_proxy_header_by_default():
    values = security_settings(**production())
    assert values == {
        "redirect": True,
        "hsts": 31_536_000,
        "proxy_header": None,
        "secure_cookies": True,
    }
    development = security_settings()
    assert (development["redirect"], development["hsts"]) == (False, 0)


def test_a_tls_terminating_proxy_is_configured_by_environment():
    behind_proxy = security_settings(
        **production(DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    )
    assert behind_proxy["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    plain_http = security_settings(
        **production(DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_SECURE_HSTS_SECONDS="0")
    )
    assert (plain_http["redirect"], plain_http["hsts"]) == (False, 0)


def test_check_deploy_is_clean_with_debug_off():
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **production(DJANGO_ALLOWED_HOSTS="ads.example.com"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_plain_http_is_redirected_and_https_through_the_proxy_gets_hsts(client):
    with override_settings(
        SECURE_SSL_REDIRECT=True,
        SECURE_HSTS_SECONDS=31_536_000,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    ):
        from django.test import Client

        fresh = Client()  # SecurityMiddleware reads its settings when the handler is built
        redirected = fresh.get("/login/")
        assert redirected.status_code == 301
        assert redirected["Location"] == "https://testserver/login/"
        assert fresh.get("/healthz").status_code == 200  # probes speak plain HTTP
        secure = fresh.get("/login/", headers={"X-Forwarded-Proto": "https"})
        assert secure.status_code == 200
        assert secure["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains; preload"
        )
