"""“Why is my line item not delivering?” — the checks the line item's page shows, as JSON."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ads import selectors
from ads.account_api.base import AccountAPIView, errors, get_or_404


class LineItemDeliveryView(AccountAPIView):
    @extend_schema(
        operation_id="diagnose_line_item",
        summary="Why a line item delivers or not, right now",
        description="The decision engine's own rules applied to the line item: status, "
        "flight, daypart, creatives, the decision index, budgets, pacing, and how much of the "
        "audience and catalog its targeting reaches. `delivering` is true when every check "
        "passes; a `pending` check changes by itself within seconds (ask again).",
        responses={
            200: inline_serializer(
                "LineItemDelivery",
                {
                    "line_item": serializers.IntegerField(),
                    "delivering": serializers.BooleanField(),
                    "checks": inline_serializer(
                        "DeliveryCheck",
                        {
                            "name": serializers.CharField(),
                            "ok": serializers.BooleanField(),
                            "detail": serializers.CharField(),
                            "pending": serializers.BooleanField(),
                        },
                        many=True,
                    ),
                },
            ),
            **errors(404),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        checks = get_or_404(
            selectors.line_item_delivery,
            "line item",
            advertiser=self.advertiser,
            line_item_id=pk,
        )
        return Response(
            {
                "line_item": pk,
                "delivering": all(check.ok for check in checks),
                "checks": [
                    {
                        "name": check.name,
                        "ok": check.ok,
                        "detail": check.detail,
                        "pending": check.pending,
                    }
                    for check in checks
                ],
            }
        )
