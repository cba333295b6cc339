from django.http import HttpRequest, HttpResponse


def account_list(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def overview(request: HttpRequest, slug: str) -> HttpResponse:
    raise NotImplementedError
