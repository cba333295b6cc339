"""The account API: an advertiser account's own integrations, with a key its owner made on the
account's API keys page (`Authorization: Bearer ila_...`).

A key acts for its account only: every read goes through the account's selectors, so another
account's id is a 404. A read key may only read (GET, HEAD, OPTIONS); a read-and-write key may
also write. Nothing caches keys: a revoked key is refused from the next request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import authentication, exceptions, permissions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ads import selectors, services
from ads.api import bearer_key
from ads.models import AccountKey, Advertiser, Campaign, DeliveryStatus


class AccountClient:
    """The authenticated caller of the account API: an integration of one account, by its key."""

    is_authenticated = True

    def __init__(self, key: AccountKey) -> None:
        self.key = key
        self.advertiser: Advertiser = key.advertiser


class AccountKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AccountClient, AccountKey] | None:
        raw_key = bearer_key(request)
        if raw_key is None:
            return None
        key = services.account_key_authenticate(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked account key.")
        return AccountClient(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class AccountKeyScheme(OpenApiAuthenticationExtension):
    target_class = AccountKeyAuthentication
    name = "accountKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An account key (ila_...), made by the account's owner.",
        }


class KeyScope(permissions.BasePermission):
    message = "This key is read-only; writing needs a read-and-write key."

    def has_permission(self, request: Request, view: APIView) -> bool:
        client = request.user
        if not isinstance(client, AccountClient):
            return False
        return request.method in permissions.SAFE_METHODS or client.key.can_write


class AccountAPIView(APIView):
    authentication_classes = [AccountKeyAuthentication]
    permission_classes = [KeyScope]

    @property
    def advertiser(self) -> Advertiser:
        return self.request.user.advertiser  # type: ignore[union-attr]


class NewestFirst(CursorPagination):
    """Opaque cursors (Stripe's `starting_after`, as a link): a page does not shift when rows
    are added meanwhile, and no page costs an OFFSET scan. Ids grow with creation."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Any:
        """DRF's, refusing a well-formed cursor whose position is not an id (DRF passes it to
        the query as it is: a 500)."""
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        if position is not None and not position.isdigit():
            raise exceptions.NotFound(self.invalid_cursor_message)
        return cursor


class PageQuery(serializers.Serializer):
    """The query of a list: a bad `limit` is named, not replaced by the default."""

    cursor = serializers.CharField(required=False, help_text="From a page's next or previous.")
    limit = serializers.IntegerField(
        min_value=1,
        max_value=NewestFirst.max_page_size,
        required=False,
        help_text=f"Per page: {NewestFirst.page_size} unless given.",
    )


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


ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(help_text="Each bad field, with its messages."),
            },
        )
    },
)
# Every account API operation can answer these.
AUTH_ERRORS = {401: ERROR, 403: ERROR}


class CampaignFilters(PageQuery):
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)


class CampaignListView(AccountAPIView):
    @extend_schema(
        operation_id="list_campaigns",
        summary="The account's campaigns, newest first",
        parameters=[CampaignFilters],
        responses={
            200: inline_serializer(
                "CampaignPage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": CampaignOutput(many=True),
                },
            ),
            400: ERROR,
            **AUTH_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        """Archived campaigns too (filter with `status`)."""
        filters = CampaignFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        campaigns = selectors.campaign_list(
            advertiser=self.advertiser,
            include_archived=True,
            status=filters.validated_data.get("status", ""),
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(campaigns, request, view=self)
        return paginator.get_paginated_response(CampaignOutput(page, many=True).data)


class CampaignDetailView(AccountAPIView):
    @extend_schema(
        operation_id="get_campaign",
        summary="One campaign of the account",
        responses={200: CampaignOutput, 404: ERROR, **AUTH_ERRORS},
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(CampaignOutput(self._campaign(campaign_id)).data)

    def _campaign(self, campaign_id: int) -> Any:
        try:
            return selectors.campaign_get(advertiser=self.advertiser, campaign_id=campaign_id)
        except ObjectDoesNotExist:
            raise exceptions.NotFound("No such campaign in this account.") from None
