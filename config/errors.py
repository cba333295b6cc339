"""The pages a person sees when something goes wrong, and the favicon that browsers ask for at
/favicon.ico. The 500 page stays Django's own handler: it renders 500.html without a request, so
it cannot fail on what failed the request."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static

from config.api import error_body


def _message(exception: Exception) -> str:
    """The text the code raised with (PermissionDenied("Your role is read-only.")), if any;
    the resolver's 404 carries a dict of tried patterns instead, which is not for people."""
    first = exception.args[0] if exception.args else ""
    return first if isinstance(first, str) else ""


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "403.html", {"message": _message(exception)}, status=403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A page for people; under /api/ (a path no route matches, such as
    /api/v1/campaigns/abc) the API's JSON error, which is what its clients read."""
    if request.path.startswith("/api/"):
        body = error_body("not_found", "No such resource: " + request.path)
        return JsonResponse(body, status=404)
    context = {"message": _message(exception), "request_path": request.path}
    return render(request, "404.html", context, status=404)


def favicon(request: HttpRequest) -> HttpResponse:
    # Browsers ask for /favicon.ico on pages that link none (admin, the API docs, JSON).
    return HttpResponseRedirect(static("favicon.svg"))
