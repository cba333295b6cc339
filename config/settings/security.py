"""What the browser is told to enforce: the Content-Security-Policy of every page (django-csp),
HTTPS (the redirect, HSTS, secure cookies) when DJANGO_DEBUG=false, and the proxy header that
says a request came over HTTPS, only when a deployment says it has such a proxy.

The policy, directive by directive (config.security adds the WebSocket origins per request):
- scripts: this site's static files only. No inline <script> (pages hand data to their
  scripts as <script type="application/json">, which is not run), no inline handlers, no
  eval: htmx runs with allowEval off (templates/base.html) and hx-on is not used.
- styles: stylesheets from this site only; no <style> elements (htmx's indicator style is
  turned off and its rules live in static/css/app.css; Swagger UI's page has its own sheet).
  Style *attributes* are allowed (style-src-attr 'unsafe-inline'): pages compute a few widths
  and colours on the server (pace bars, progress, posters), and Chart.js and Swagger UI set
  styles on their own elements. An injected style attribute can neither run script nor read
  the page (it has no selectors), which is what makes <style> elements worth refusing.
- media: the creatives' videos live on the advertisers' own hosts (any https URL); images
  also allow data: URLs (Pico's and Swagger UI's icons).
- connect: this site, plus ws(s):// to this host for the live dashboards.
- no plugins, no framing by other sites, forms post to this site only.
"""

from csp.constants import NONE, SELF, UNSAFE_INLINE

from config.settings.django import DEBUG
from config.settings.env import env

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "media-src": [SELF, "https:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# HTTPS when debug is off. A TLS-terminating proxy in front: set
# DJANGO_SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto (the header it sets to "https"), and make
# sure the proxy overwrites that header; without it, behind such a proxy every request would
# look like plain HTTP and be redirected forever. A stack that serves plain HTTP on purpose
# (docker compose on a laptop, the benches) sets DJANGO_SECURE_SSL_REDIRECT=false and
# DJANGO_SECURE_HSTS_SECONDS=0.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# The probes of a load balancer or orchestrator speak plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
_proxy_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
