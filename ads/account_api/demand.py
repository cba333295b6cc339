"""Campaigns, line items and creatives of the key's account: list, retrieve, create, partial
update, pause / resume / archive.

The input serializers take the web forms' field lists (`ads.forms`), and every write goes
through the same `ads.services` function the forms call, which validates the whole object
again: a rule the web app enforces, the API enforces, with the field named in the 400.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as ModelValidationError
from django.db.models import Model, QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ads import forms, selectors, services
from ads.account_api.base import (
    IDEMPOTENCY_KEY,
    IF_MATCH,
    AccountAPIView,
    PageQuery,
    Pages,
    check_if_match,
    errors,
    get_or_404,
    id_field,
    idempotent,
    page_of,
    service_errors,
    with_etag,
)
from ads.models import Campaign, Creative, DeliveryStatus, LineItem
from catalog import selectors as catalog_selectors

# Far-off dates are typos (the dashboards' date range has the same bounds).
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


class Input(serializers.ModelSerializer):
    """An input that names a field it does not take instead of ignoring it: a PATCH of
    `status` or `campaign` must not answer 200 having changed nothing."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {field: ["This field cannot be set here."] for field in unknown}
                )
        return super().to_internal_value(data)


# Campaigns ------------------------------------------------------------------------------


class CampaignOutput(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "objective",
            "status",
            "start_date",
            "end_date",
            "created_at",
            "updated_at",
        ]


class CampaignInput(Input):
    class Meta:
        model = Campaign
        fields = forms.CampaignForm.Meta.fields


# Line items -----------------------------------------------------------------------------


def _targeting_fields() -> dict[str, serializers.Field]:
    return {
        name: serializers.ListField(
            child=serializers.ChoiceField(choices=choices.choices), required=False
        )
        for name, choices in LineItem.TARGETING_CHOICES.items()
    }


class LineItemOutput(serializers.ModelSerializer):
    locals().update(
        {
            name: serializers.ListField(child=serializers.CharField())
            for name in LineItem.TARGETING_CHOICES
        }
    )

    class Meta:
        model = LineItem
        fields = [
            "id",
            "campaign",
            "status",
            *LineItem.EDITABLE_FIELDS,
            "created_at",
            "updated_at",
        ]


class LineItemUpdate(Input):
    locals().update(_targeting_fields())
    target_genres = serializers.PrimaryKeyRelatedField(
        queryset=catalog_selectors.genres(), many=True, required=False
    )
    include_titles = serializers.PrimaryKeyRelatedField(
        queryset=catalog_selectors.titles(), many=True, required=False
    )
    exclude_titles = serializers.PrimaryKeyRelatedField(
        queryset=catalog_selectors.titles(), many=True, required=False
    )

    class Meta:
        model = LineItem
        fields = forms.LineItemForm.Meta.fields


class OfTheAccount(serializers.PrimaryKeyRelatedField):
    """A parent chosen by id among the account's live ones, as the create forms offer them:
    another account's id is "does not exist", the same as an id that never was."""

    def __init__(self, selector: Callable[..., QuerySet], **kwargs: Any) -> None:
        self.selector = selector
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet:
        return self.selector(advertiser=self.context["advertiser"])


class LineItemInput(LineItemUpdate):
    campaign = OfTheAccount(
        selectors.campaign_list,
        queryset=Campaign.objects.none(),
        help_text="A live campaign of this account.",
    )

    class Meta(LineItemUpdate.Meta):
        fields = forms.LineItemCreateForm.Meta.fields


# Creatives ------------------------------------------------------------------------------


class CreativeOutput(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="line_item.campaign_id", read_only=True)

    class Meta:
        model = Creative
        fields = [
            "id",
            "line_item",
            "campaign",
            "status",
            *forms.CreativeForm.Meta.fields,
            "created_at",
            "updated_at",
        ]


class CreativeUpdate(Input):
    class Meta:
        model = Creative
        fields = forms.CreativeForm.Meta.fields


class CreativeInput(CreativeUpdate):
    line_item = OfTheAccount(
        selectors.line_item_list,
        queryset=LineItem.objects.none(),
        help_text="A live line item of this account.",
    )

    class Meta(CreativeUpdate.Meta):
        fields = forms.CreativeCreateForm.Meta.fields


# What differs between the three ------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    kind: str  # "campaign": in messages, operation ids and URL names
    plural: str
    output: type[serializers.Serializer]
    create_input: type[serializers.Serializer]
    update_input: type[serializers.Serializer]
    filters: type[serializers.Serializer]
    orderings: dict[str, tuple[str, ...]]
    rows: Callable[..., QuerySet]  # (advertiser, validated filters) → the list
    get: Callable[..., Model]  # (advertiser, id) → one row, DoesNotExist otherwise
    create: Callable[..., Model]
    update: Callable[..., Model]
    example: dict[str, Any]


class ListFilters(PageQuery):
    status = serializers.ChoiceField(
        choices=DeliveryStatus.choices,
        required=False,
        help_text="Only this status (archived ones are listed too unless filtered).",
    )

    def _date(self, value: dt.date | None) -> dt.date | None:
        if value is not None and not EARLIEST <= value <= LATEST:
            raise serializers.ValidationError(f"Choose a date between {EARLIEST} and {LATEST}.")
        return value


def _ordering_field(orderings: dict[str, tuple[str, ...]]) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(orderings),
        required=False,
        help_text="Sort key; a leading `-` reverses it. Newest first unless given.",
    )


CAMPAIGN_ORDERINGS = {
    "created": ("id",),
    "-created": ("-id",),
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "start": ("start_date", "id"),
    "-start": ("-start_date", "-id"),
}
LINE_ITEM_ORDERINGS = {
    **{key: value for key, value in CAMPAIGN_ORDERINGS.items() if "start" not in key},
    "start": ("start_at", "id"),
    "-start": ("-start_at", "-id"),
}
CREATIVE_ORDERINGS = {key: value for key, value in CAMPAIGN_ORDERINGS.items() if "start" not in key}


class CampaignFilters(ListFilters):
    starts_from = serializers.DateField(required=False, help_text="Starting on or after.")
    starts_until = serializers.DateField(required=False, help_text="Starting on or before.")
    ordering = _ordering_field(CAMPAIGN_ORDERINGS)

    def validate_starts_from(self, value: dt.date | None) -> dt.date | None:
        return self._date(value)

    def validate_starts_until(self, value: dt.date | None) -> dt.date | None:
        return self._date(value)


class LineItemFilters(CampaignFilters):
    campaign = id_field(required=False, help_text="Only this campaign's.")
    ordering = _ordering_field(LINE_ITEM_ORDERINGS)


class CreativeFilters(ListFilters):
    campaign = id_field(required=False, help_text="Only this campaign's.")
    line_item = id_field(required=False, help_text="Only this line item's.")
    ordering = _ordering_field(CREATIVE_ORDERINGS)


def _scoped_to(advertiser: Any, filters: dict[str, Any]) -> dict[str, Any]:
    """The filters' campaign and line item ids, each checked to be the account's: another
    account's id is a 404, as in a URL."""
    scope = {}
    if "campaign" in filters:
        get_or_404(
            selectors.campaign_get,
            "campaign",
            advertiser=advertiser,
            campaign_id=filters["campaign"],
        )
        scope["campaign_id"] = filters["campaign"]
    if "line_item" in filters:
        get_or_404(
            selectors.line_item_get,
            "line item",
            advertiser=advertiser,
            line_item_id=filters["line_item"],
        )
        scope["line_item_id"] = filters["line_item"]
    return scope


def _dates(filters: dict[str, Any]) -> dict[str, Any]:
    return {key: filters.get(key) for key in ("starts_from", "starts_until")}


CAMPAIGN = Resource(
    kind="campaign",
    plural="campaigns",
    output=CampaignOutput,
    create_input=CampaignInput,
    update_input=CampaignInput,
    filters=CampaignFilters,
    orderings=CAMPAIGN_ORDERINGS,
    rows=lambda advertiser, filters: selectors.campaign_list(
        advertiser=advertiser,
        include_archived=True,
        status=filters.get("status", ""),
        **_dates(filters),
    ),
    get=lambda advertiser, pk: selectors.campaign_get(advertiser=advertiser, campaign_id=pk),
    create=services.campaign_create,
    update=lambda item, changes: services.campaign_update(campaign=item, **changes),
    example={
        "name": "Winter Warmers",
        "objective": "awareness",
        "start_date": "2026-12-07",
        "end_date": "2027-01-31",
    },
)
LINE_ITEM = Resource(
    kind="line item",
    plural="line_items",
    output=LineItemOutput,
    create_input=LineItemInput,
    update_input=LineItemUpdate,
    filters=LineItemFilters,
    orderings=LINE_ITEM_ORDERINGS,
    rows=lambda advertiser, filters: selectors.line_item_list(
        advertiser=advertiser,
        include_archived=True,
        status=filters.get("status", ""),
        **_scoped_to(advertiser, filters),
        **_dates(filters),
    ).prefetch_related(*LineItem.TARGETING_RELATIONS),
    get=lambda advertiser, pk: selectors.line_item_get(advertiser=advertiser, line_item_id=pk),
    create=services.line_item_create,
    update=lambda item, changes: services.line_item_update(line_item=item, **changes),
    example={
        "campaign": 1,
        "name": "Evenings on TV",
        "start_at": "2026-12-07T18:00:00",
        "pricing": "cpm",
        "bid": "12.50",
        "daily_budget": "200.00",
        "lifetime_budget": "5000.00",
        "target_devices": ["ctv"],
    },
)
CREATIVE = Resource(
    kind="creative",
    plural="creatives",
    output=CreativeOutput,
    create_input=CreativeInput,
    update_input=CreativeUpdate,
    filters=CreativeFilters,
    orderings=CREATIVE_ORDERINGS,
    rows=lambda advertiser, filters: selectors.creative_list(
        advertiser=advertiser,
        include_archived=True,
        status=filters.get("status", ""),
        **_scoped_to(advertiser, filters),
    ),
    get=lambda advertiser, pk: selectors.creative_get(advertiser=advertiser, creative_id=pk),
    create=services.creative_create,
    update=lambda item, changes: services.creative_update(creative=item, **changes),
    example={
        "line_item": 1,
        "name": "Cocoa 30s",
        "duration_seconds": 30,
        "media_url": "https://cdn.example.com/cocoa-30.mp4",
        "click_url": "https://example.com/cocoa",
        "category": "beverages",
    },
)

ACTIONS = {
    "pause": DeliveryStatus.PAUSED,
    "resume": DeliveryStatus.ACTIVE,
    "archive": DeliveryStatus.ARCHIVED,
}


class ResourceView(AccountAPIView):
    resource: Resource

    def one(self, pk: int) -> Any:
        return get_or_404(self.resource.get, self.resource.kind, advertiser=self.advertiser, pk=pk)

    def shown(self, item: Any, http_status: int = status.HTTP_200_OK) -> Response:
        response = Response(self.resource.output(item).data, status=http_status)
        return with_etag(response)

    def write(self, save: Callable[[], Any]) -> Any:
        try:
            return save()
        except ModelValidationError as error:
            raise service_errors(error) from None


class ResourceListView(ResourceView):
    def get(self, request: Request) -> Response:
        filters = self.resource.filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        rows = self.resource.rows(self.advertiser, values)
        paginator = Pages(self.resource.orderings[values.get("ordering", "-created")])
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(self.resource.output(page, many=True).data)

    def post(self, request: Request) -> Response:
        return idempotent(request, self.key, self._create)

    def _create(self) -> Response:
        form = self.resource.create_input(
            data=self.request.data, context={"advertiser": self.advertiser}
        )
        form.is_valid(raise_exception=True)
        item = self.write(
            lambda: self.resource.create(advertiser=self.advertiser, **form.validated_data)
        )
        response = self.shown(self.one(item.pk), status.HTTP_201_CREATED)
        response["Location"] = self.request.build_absolute_uri(
            reverse(f"api-{self.resource.plural}-detail", args=[item.pk])
        )
        return response


class ResourceDetailView(ResourceView):
    def get(self, request: Request, pk: int) -> Response:
        return self.shown(self.one(pk))

    def patch(self, request: Request, pk: int) -> Response:
        item = self.one(pk)
        check_if_match(request, self.resource.output(item).data)
        form = self.resource.update_input(
            item, data=request.data, partial=True, context={"advertiser": self.advertiser}
        )
        form.is_valid(raise_exception=True)
        self.write(lambda: self.resource.update(item, dict(form.validated_data)))
        return self.shown(self.one(pk))


class ResourceActionView(ResourceView):
    action: str

    def post(self, request: Request, pk: int) -> Response:
        item = self.one(pk)
        check_if_match(request, self.resource.output(item).data)
        self.write(lambda: services.delivery_status_set(item=item, status=ACTIONS[self.action]))
        return self.shown(self.one(pk))


def views(resource: Resource) -> dict[str, Any]:
    """The list, detail and action views of `resource`, each with its schema."""
    kind, name = resource.kind, resource.kind.replace(" ", "_")
    output = resource.output
    list_view = extend_schema_view(
        get=extend_schema(
            operation_id=f"list_{resource.plural}",
            summary=f"The account's {kind}s, newest first",
            description="Archived ones too (filter with `status`). Another account's campaign "
            "or line item id in a filter is a 404.",
            parameters=[resource.filters],
            responses={200: page_of(output, f"{output.__name__}Page"), **errors(400, 404)},
        ),
        post=extend_schema(
            operation_id=f"create_{name}",
            summary=f"Create a {kind}",
            request=resource.create_input,
            parameters=[IDEMPOTENCY_KEY],
            responses={201: output, **errors(400, 403, 409, 413, 415)},
            examples=[OpenApiExample(f"A {kind}", value=resource.example, request_only=True)],
        ),
    )(type(f"{name}_list", (ResourceListView,), {"resource": resource}))
    detail_view = extend_schema_view(
        get=extend_schema(
            operation_id=f"get_{name}",
            summary=f"One {kind} of the account (with its ETag)",
            responses={200: output, **errors(404)},
        ),
        patch=extend_schema(
            operation_id=f"update_{name}",
            summary=f"Change some fields of a {kind}",
            request=resource.update_input,
            parameters=[IF_MATCH],
            responses={200: output, **errors(400, 403, 404, 412, 413, 415)},
        ),
    )(type(f"{name}_detail", (ResourceDetailView,), {"resource": resource}))
    actions = {
        action: extend_schema_view(
            post=extend_schema(
                operation_id=f"{action}_{name}",
                summary=f"{action.capitalize()} a {kind}",
                description="Archiving is final, and archives what hangs below; nothing "
                "archived (or under something archived) can be resumed or changed: a 400.",
                request=None,
                parameters=[IF_MATCH],
                responses={200: output, **errors(400, 403, 404, 412)},
            )
        )(
            type(
                f"{name}_{action}",
                (ResourceActionView,),
                {"resource": resource, "action": action},
            )
        )
        for action in ACTIONS
    }
    return {"list": list_view, "detail": detail_view, "actions": actions}
