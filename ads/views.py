"""The advertiser web app: server-rendered pages, with htmx for the status buttons.

Every page under /a/<slug>/ goes through `account_view`, which resolves the account from the
URL against the user's memberships (not a member: 404), refuses writes to analysts (403) and
renders in the account's time zone. Object ids go through the `*_get(advertiser=...)`
selectors, so another account's id is a 404 too (DESIGN.md, "Tenancy").
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.paginator import Paginator
from django.db.models import F
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from ads import selectors, services
from ads.access import account_view
from ads.forms import (
    CampaignForm,
    CreativeCreateForm,
    CreativeForm,
    LineItemCreateForm,
    LineItemForm,
    ReachForm,
    add_service_errors,
    start_default,
    targeting_summary,
)
from ads.models import (
    Advertiser,
    AuditEntry,
    Campaign,
    Creative,
    DeliveryStatus,
    LineItem,
    Membership,
)
from ads.selectors import reach
from ads.selectors.reach import Targeting

# The name each kind of item goes by in URL names, templates and contexts.
KINDS: dict[type, str] = {Campaign: "campaign", LineItem: "line_item", Creative: "creative"}

# The list selector of each kind: re-reading one row through it gives the row its list's counts.
LIST_SELECTORS: dict[type, Callable[..., Any]] = {
    Campaign: selectors.campaign_list,
    LineItem: selectors.line_item_list,
    Creative: selectors.creative_list,
}


def _render(
    request: HttpRequest,
    membership: Membership,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    context = {"membership": membership, "advertiser": membership.advertiser, **context}
    return render(request, template, context, status=status)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _get_or_404(selector: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return selector(**kwargs)
    except ObjectDoesNotExist:
        raise Http404("No such item in this account.") from None


def _include_archived(request: HttpRequest) -> bool:
    return request.GET.get("archived") == "1"


# How many times the delivery checks ask again while the decision index catches up (1.5 s apart).
DELIVERY_RECHECKS = 5


def _delivery_context(
    advertiser: Advertiser, line_item_id: int, *, tries: int = 0
) -> dict[str, Any]:
    """The delivery checks of a line item, and where to ask again while one is pending."""
    checks = _get_or_404(
        selectors.line_item_delivery, advertiser=advertiser, line_item_id=line_item_id
    )
    recheck_url = ""
    if tries < DELIVERY_RECHECKS and any(check.pending for check in checks):
        url = reverse("line_item_delivery", args=[advertiser.slug, line_item_id])
        recheck_url = f"{url}?tries={tries + 1}"
    return {"checks": checks, "recheck_url": recheck_url}


def _campaign_sections(
    advertiser: Advertiser, campaign: Campaign, *, include_archived: bool
) -> dict[str, Any]:
    """What a campaign's page shows below its status: its line items."""
    line_items = selectors.line_item_list(
        advertiser=advertiser, campaign_id=campaign.pk, include_archived=include_archived
    )
    line_items = _with_delivery(advertiser, LineItem, list(line_items))
    return {"campaign": campaign, "line_items": line_items, "include_archived": include_archived}


def _line_item_sections(
    advertiser: Advertiser, line_item: LineItem, *, include_archived: bool
) -> dict[str, Any]:
    """What a line item's page shows below its status: its creatives (the delivery checks load
    by themselves)."""
    creatives = selectors.creative_list(
        advertiser=advertiser, line_item_id=line_item.pk, include_archived=include_archived
    )
    creatives = _with_delivery(advertiser, Creative, list(creatives))
    return {"line_item": line_item, "creatives": creatives, "include_archived": include_archived}


def _post_data(request: HttpRequest) -> Any:
    """The data to bind a form to: none on GET, so the form renders unbound and error-free."""
    return request.POST if request.method == "POST" else None


def _detail_url(advertiser: Advertiser, item: Campaign | LineItem | Creative) -> str:
    return reverse(f"{KINDS[type(item)]}_detail", args=[advertiser.slug, item.pk])


def _with_delivery(
    advertiser: Advertiser, model: type[Campaign | LineItem | Creative], items: list
) -> list:
    """`items` with their delivery against goal as `.delivery` (a creative: its line item's),
    or None when there is nothing to measure: one counter read, at most one query."""
    if model is Campaign:
        goals = selectors.campaign_pacing(advertiser=advertiser, campaigns=items)
        for campaign in items:
            campaign.delivery = goals.get(campaign.pk)
    elif model is LineItem:
        goals = selectors.line_item_pacing(advertiser=advertiser, line_items=items)
        for line_item in items:
            line_item.delivery = goals.get(line_item.pk)
    else:
        line_items = list(
            {creative.line_item_id: creative.line_item for creative in items}.values()
        )
        goals = selectors.line_item_pacing(advertiser=advertiser, line_items=line_items)
        for creative in items:
            creative.delivery = goals.get(creative.line_item_id)
    return items


LIST_PAGE_SIZE = 25
SORT_LABELS = {"name": "name", "start": "start", "budget": "daily budget", "status": "status"}
# What the start and the budget of each kind's rows are, for the sort menu.
SORT_OPTIONS = {
    Campaign: [
        ("name", "Name"),
        ("start", "Start date"),
        ("budget", "Daily budget"),
        ("status", "Status"),
    ],
    LineItem: [
        ("name", "Name"),
        ("start", "Start"),
        ("budget", "Daily budget"),
        ("status", "Status"),
    ],
    Creative: [
        ("name", "Name"),
        ("start", "Line item's start"),
        ("budget", "Line item's daily budget"),
        ("status", "Status"),
    ],
}


def _list_query(request: HttpRequest, advertiser: Advertiser, model: type) -> dict[str, Any]:
    """What a list page's query string asks for: ?q= (in names), ?status=, ?campaign= (line
    items and creatives), ?sort= (a key of SORT_LABELS, "-" first to reverse), ?archived=1.
    A value that means nothing is named on the page and ignored; another account's campaign
    (or a campaign id that is no id) is a 404, like its page."""
    notes = []
    status = request.GET.get("status", "")
    if status not in DeliveryStatus.values:
        if status:
            notes.append(f"Unknown status “{status}”: showing every status.")
        status = ""
    sort = request.GET.get("sort", "")
    if sort.removeprefix("-") not in SORT_LABELS:
        if sort:
            notes.append(f"Unknown sort “{sort}”: newest first.")
        sort = ""
    campaign = None
    if model is not Campaign and request.GET.get("campaign"):
        try:
            campaign_id = int(request.GET["campaign"])
        except ValueError:
            raise Http404("No such campaign in this account.") from None
        campaign = _get_or_404(
            selectors.campaign_get, advertiser=advertiser, campaign_id=campaign_id
        )
    return {
        "search": request.GET.get("q", "")[:120],
        "status": status,
        "sort": sort,
        "campaign": campaign,
        "include_archived": _include_archived(request),
        "notes": notes,
    }


def _sort_links(sort: str) -> dict[str, dict[str, str]]:
    """For each sortable column: the sort its header link asks for (the other way round when
    it is the current one) and its aria-sort value."""
    links = {}
    for key in SORT_LABELS:
        if sort == key:
            links[key] = {"next": f"-{key}", "aria": "ascending", "arrow": "▲"}
        elif sort == f"-{key}":
            links[key] = {"next": key, "aria": "descending", "arrow": "▼"}
        else:
            links[key] = {"next": key, "aria": "none", "arrow": ""}
    return links


def _list_page(
    request: HttpRequest, membership: Membership, model: type[Campaign | LineItem | Creative]
) -> HttpResponse:
    """The account's items of one kind, through that kind's list selector, narrowed by the
    query string (`_list_query`), a page of LIST_PAGE_SIZE at a time, each with its delivery
    against goal. Links (sorting, pages, the archived toggle) keep the rest of the query."""
    advertiser = membership.advertiser
    kind = KINDS[model]
    query = _list_query(request, advertiser, model)
    narrowing: dict[str, Any] = {
        "include_archived": query["include_archived"],
        "search": query["search"],
        "status": query["status"],
        "sort": query["sort"],
    }
    if query["campaign"] is not None:
        narrowing["campaign_id"] = query["campaign"].pk
    items = LIST_SELECTORS[model](advertiser=advertiser, **narrowing)
    page = Paginator(items, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = _with_delivery(advertiser, model, list(page.object_list))
    context = {
        f"{kind}s": rows,
        "page": page,
        "query": query,
        "include_archived": query["include_archived"],
        "sort_links": _sort_links(query["sort"]),
        "statuses": DeliveryStatus.choices,
        "sort_options": SORT_OPTIONS[model],
        "campaign_choices": (
            selectors.campaign_choices(advertiser=advertiser) if model is not Campaign else []
        ),
        "filtered": bool(query["search"] or query["status"] or query["campaign"]),
        "list_url": request.path,
    }
    return _render(request, membership, f"ads/{kind}_list.html", context)


def _form_page(
    request: HttpRequest,
    membership: Membership,
    form: BaseForm,
    *,
    save: Callable[[dict[str, Any]], Campaign | LineItem | Creative],
    title: str,
    cancel_url: str,
    item: Campaign | LineItem | Creative | None = None,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    """The create and edit pages: a valid POST calls `save` (one service call) with the
    cleaned data and redirects to the saved item; the service's ValidationError is shown on
    the form's fields, with the submitted values kept."""
    if request.method == "POST" and form.is_valid():
        try:
            saved = save(form.cleaned_data)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Saved “{saved}”.")
            return redirect(_detail_url(membership.advertiser, saved))
    context = {"form": form, "title": title, "cancel_url": cancel_url, "item": item}
    return _render(request, membership, "ads/form.html", context | (extra or {}))


def _status_change(
    request: HttpRequest, membership: Membership, item: Campaign | LineItem | Creative
) -> HttpResponse:
    """Pause, resume or archive `item` with the POSTed `status`.

    With htmx, answer with the fragment the button sits in: its list row, or on a detail page
    the status panel, plus, swapped out of band, the page's sections the change alters (a line
    item's delivery checks and creatives, a campaign's line items: archiving reaches down, and
    an archived item offers nothing to add). Without JS, redirect back with a message.
    A refused change (an archived item, an unknown status) is shown, never a 500.
    """
    advertiser = membership.advertiser
    try:
        services.delivery_status_set(
            item=item,
            status=request.POST.get("status", ""),
            actor=services.Actor.page(request.user),
        )
        error = None
    except ValidationError as exc:
        error = " ".join(exc.messages)
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = _detail_url(advertiser, item)

    if request.htmx:
        kind = KINDS[type(item)]
        if request.POST.get("fragment") == "row":
            row = LIST_SELECTORS[type(item)](advertiser=advertiser, include_archived=True)
            (item,) = _with_delivery(advertiser, type(item), [row.get(pk=item.pk)])
            template = f"ads/partials/{kind}_row.html"
            context: dict[str, Any] = {kind: item}
        else:
            template = "ads/partials/status_changed.html"
            # The sections as the page shows them: with archived rows if its URL asks for them.
            page_query = QueryDict(urlsplit(next_url).query)
            include_archived = page_query.get("archived") == "1"
            if isinstance(item, LineItem):
                context = _line_item_sections(advertiser, item, include_archived=include_archived)
                context |= _delivery_context(advertiser, item.pk)
            elif isinstance(item, Campaign):
                context = _campaign_sections(advertiser, item, include_archived=include_archived)
            else:
                context = {kind: item}
        context |= {"item": item, "kind": kind, "status_error": error, "next_url": next_url}
        return _render(request, membership, template, context)

    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"“{item}” is now {item.get_status_display().lower()}.")
    return redirect(next_url)


# Accounts


@login_required
def account_list(request: HttpRequest) -> HttpResponse:
    # The annotation reuses the selector's join on the user's membership: one role per row.
    advertisers = selectors.advertisers_for_user(user=request.user).annotate(
        role=F("memberships__role")
    )
    accounts = [(advertiser, Membership.Role(advertiser.role).label) for advertiser in advertisers]
    if not accounts and request.user.is_staff:
        # Staff without an account of their own land on their dashboards (also after login).
        return redirect("staff_dashboard")
    return render(request, "ads/account_list.html", {"accounts": accounts})


# Campaigns


@account_view
def campaign_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _list_page(request, membership, Campaign)


@account_view
def campaign_detail(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    advertiser = membership.advertiser
    campaign = _get_or_404(selectors.campaign_get, advertiser=advertiser, campaign_id=campaign_id)
    context = _campaign_sections(advertiser, campaign, include_archived=_include_archived(request))
    context["history"] = selectors.audit_history(
        advertiser=advertiser, object_type=AuditEntry.ObjectType.CAMPAIGN, object_id=campaign.pk
    )
    return _render(request, membership, "ads/campaign_detail.html", context)


@account_view(write=True)
@require_http_methods(["GET", "POST"])
def campaign_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    advertiser = membership.advertiser
    return _form_page(
        request,
        membership,
        CampaignForm(_post_data(request)),
        save=lambda data: services.campaign_create(
            advertiser=advertiser, actor=services.Actor.page(request.user), **data
        ),
        title="New campaign",
        cancel_url=reverse("campaigns", args=[advertiser.slug]),
    )


@account_view(write=True)
@require_http_methods(["GET", "POST"])
def campaign_edit(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    advertiser = membership.advertiser
    campaign = _get_or_404(selectors.campaign_get, advertiser=advertiser, campaign_id=campaign_id)
    return _form_page(
        request,
        membership,
        CampaignForm(_post_data(request), instance=campaign),
        save=lambda data: services.campaign_update(
            campaign=campaign, actor=services.Actor.page(request.user), **data
        ),
        title=f"Edit campaign “{campaign}”",
        cancel_url=_detail_url(advertiser, campaign),
        item=campaign,
    )


@account_view(write=True)
@require_POST
def campaign_status(request: HttpRequest, membership: Membership, campaign_id: int) -> HttpResponse:
    campaign = _get_or_404(
        selectors.campaign_get, advertiser=membership.advertiser, campaign_id=campaign_id
    )
    return _status_change(request, membership, campaign)


# Line items


@account_view
def line_item_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _list_page(request, membership, LineItem)


@account_view
def line_item_detail(
    request: HttpRequest, membership: Membership, line_item_id: int
) -> HttpResponse:
    advertiser = membership.advertiser
    line_item = _get_or_404(
        selectors.line_item_get, advertiser=advertiser, line_item_id=line_item_id
    )
    context = _line_item_sections(
        advertiser, line_item, include_archived=_include_archived(request)
    )
    context["targeting"] = targeting_summary(line_item)
    context["history"] = selectors.audit_history(
        advertiser=advertiser, object_type=AuditEntry.ObjectType.LINE_ITEM, object_id=line_item.pk
    )
    return _render(request, membership, "ads/line_item_detail.html", context)


@account_view
def line_item_delivery(
    request: HttpRequest, membership: Membership, line_item_id: int
) -> HttpResponse:
    """The delivery checks of a line item (loaded into its page by htmx)."""
    try:
        tries = int(request.GET.get("tries", "0"))
    except ValueError:
        tries = DELIVERY_RECHECKS
    context = _delivery_context(membership.advertiser, line_item_id, tries=tries)
    return _render(request, membership, "ads/partials/line_item_delivery.html", context)


@account_view(write=True)
@require_http_methods(["GET", "POST"])
def line_item_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    advertiser = membership.advertiser
    # ?campaign=<id> preselects the campaign; an id that is not a choice is simply ignored.
    form = LineItemCreateForm(_post_data(request), advertiser=advertiser)
    campaign = form.fields["campaign"].queryset.filter(pk=_int_or_none(request.GET.get("campaign")))
    campaign = campaign.first()
    form.initial = {
        "campaign": request.GET.get("campaign"),
        "start_at": start_default(advertiser=advertiser, campaign=campaign),
    }
    return _form_page(
        request,
        membership,
        form,
        save=lambda data: services.line_item_create(
            advertiser=advertiser, actor=services.Actor.page(request.user), **data
        ),
        title="New line item",
        cancel_url=reverse("line_items", args=[advertiser.slug]),
        extra={"reach_url": reverse("line_item_reach", args=[advertiser.slug])},
    )


@account_view(write=True)
@require_http_methods(["GET", "POST"])
def line_item_edit(request: HttpRequest, membership: Membership, line_item_id: int) -> HttpResponse:
    advertiser = membership.advertiser
    line_item = _get_or_404(
        selectors.line_item_get, advertiser=advertiser, line_item_id=line_item_id
    )
    return _form_page(
        request,
        membership,
        LineItemForm(_post_data(request), instance=line_item, advertiser=advertiser),
        save=lambda data: services.line_item_update(
            line_item=line_item, actor=services.Actor.page(request.user), **data
        ),
        title=f"Edit line item “{line_item}”",
        cancel_url=_detail_url(advertiser, line_item),
        item=line_item,
        extra={
            "reach_url": reverse("line_item_reach", args=[advertiser.slug]),
            "reach_campaign": line_item.campaign_id,
        },
    )


@account_view
def line_item_reach(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The line item form's reach preview (htmx, GET with the form's current values): what its
    targeting reaches, from the catalog and recent traffic. Wrong values answer a 400 fragment
    that names them; another account's campaign is a 404. A read: analysts may ask too."""
    advertiser = membership.advertiser
    campaign = None
    if request.GET.get("campaign"):
        campaign_id = _int_or_none(request.GET["campaign"])
        if campaign_id is None:
            raise Http404("No such campaign in this account.")
        campaign = _get_or_404(
            selectors.campaign_get, advertiser=advertiser, campaign_id=campaign_id
        )
    form = ReachForm(request.GET)
    if not form.is_valid():
        context = {"errors": [(form[name].label, errors) for name, errors in form.errors.items()]}
        return _render(request, membership, "ads/partials/reach_preview.html", context, status=400)
    data = form.cleaned_data
    targeting = Targeting(
        genre_ids=[genre.pk for genre in data["target_genres"]],
        maturity_ratings=data["target_maturity_ratings"],
        regions=data["target_regions"],
        devices=data["target_devices"],
        age_bands=data["target_age_bands"],
        dayparts=data["target_dayparts"],
        include_title_ids=[title.pk for title in data["include_titles"]],
        exclude_title_ids=[title.pk for title in data["exclude_titles"]],
    )
    estimate = reach.line_item_reach(
        advertiser=advertiser,
        targeting=targeting,
        pricing=data["pricing"] or LineItem.Pricing.CPM,
        bid=data["bid"],
        daily_budget=data["daily_budget"],
    )
    remaining_days = None
    if campaign is not None and campaign.end_date is not None:
        today = timezone.localdate(timezone=advertiser.tzinfo)
        remaining_days = max(0, (campaign.end_date - today).days + 1)
    context = {
        "reach": estimate,
        "campaign": campaign,
        "remaining_days": remaining_days,
        "flight_breaks": (
            round(estimate.breaks_per_day * remaining_days) if remaining_days is not None else None
        ),
    }
    return _render(request, membership, "ads/partials/reach_preview.html", context)


@account_view(write=True)
@require_POST
def line_item_status(
    request: HttpRequest, membership: Membership, line_item_id: int
) -> HttpResponse:
    line_item = _get_or_404(
        selectors.line_item_get, advertiser=membership.advertiser, line_item_id=line_item_id
    )
    return _status_change(request, membership, line_item)


# Creatives


@account_view
def creative_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _list_page(request, membership, Creative)


@account_view
def creative_detail(request: HttpRequest, membership: Membership, creative_id: int) -> HttpResponse:
    creative = _get_or_404(
        selectors.creative_get, advertiser=membership.advertiser, creative_id=creative_id
    )
    history = selectors.audit_history(
        advertiser=membership.advertiser,
        object_type=AuditEntry.ObjectType.CREATIVE,
        object_id=creative.pk,
    )
    context = {"creative": creative, "history": history}
    return _render(request, membership, "ads/creative_detail.html", context)


@account_view(write=True)
@require_http_methods(["GET", "POST"])
def creative_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    advertiser = membership.advertiser
    # ?line_item=<id> preselects the line item; an id that is not a choice is simply ignored.
    form = CreativeCreateForm(
        _post_data(request),
        advertiser=advertiser,
        initial={"line_item": request.GET.get("line_item")},
    )
    return _form_page(
        request,
        membership,
        form,
        save=lambda data: services.creative_create(
            advertiser=advertiser, actor=services.Actor.page(request.user), **data
        ),
        title="New creative",
        cancel_url=reverse("creatives", args=[advertiser.slug]),
    )


@account_view(write=True)
@require_http_methods(["GET", "POST"])
def creative_edit(request: HttpRequest, membership: Membership, creative_id: int) -> HttpResponse:
    advertiser = membership.advertiser
    creative = _get_or_404(selectors.creative_get, advertiser=advertiser, creative_id=creative_id)
    return _form_page(
        request,
        membership,
        CreativeForm(_post_data(request), instance=creative),
        save=lambda data: services.creative_update(
            creative=creative, actor=services.Actor.page(request.user), **data
        ),
        title=f"Edit creative “{creative}”",
        cancel_url=_detail_url(advertiser, creative),
        item=creative,
    )


@account_view(write=True)
@require_POST
def creative_status(request: HttpRequest, membership: Membership, creative_id: int) -> HttpResponse:
    creative = _get_or_404(
        selectors.creative_get, advertiser=membership.advertiser, creative_id=creative_id
    )
    return _status_change(request, membership, creative)
