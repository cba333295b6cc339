"""Signed tracking tokens: what a tracking link or a reported event proves.

A token names the decision, the slot (creative, line item, position), the viewer, the title and
break, the price, and when it was issued; it is signed with the secret key (HMAC-SHA256), so a
changed byte makes it invalid. It expires TOKEN_TTL after the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing

TOKEN_TTL = timedelta(hours=4)
_signer = signing.Signer(salt="interlude.tracking.v1")


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TrackingClaim:
    decision_id: str
    creative_id: int
    line_item_id: int
    advertiser_id: int
    viewer_id: int
    title_id: int
    ad_break_id: int
    position: int
    device: str
    region: str
    price_micros: int
    is_cpm: bool
    issued_at: datetime

    def event_id(self, event_type: str) -> str:
        return f"{self.decision_id}:{self.creative_id}:{event_type}"


def make_token(claim: TrackingClaim) -> str:
    return _signer.sign_object(
        [
            claim.decision_id,
            claim.creative_id,
            claim.line_item_id,
            claim.advertiser_id,
            claim.viewer_id,
            claim.title_id,
            claim.ad_break_id,
            claim.position,
            claim.device,
            claim.region,
            claim.price_micros,
            int(claim.is_cpm),
            int(claim.issued_at.timestamp()),
        ]
    )


def read_token(token: str, *, at: datetime) -> TrackingClaim:
    """The claim a token carries; InvalidToken("forged") or ("expired") otherwise."""
    try:
        values = _signer.unsign_object(token)
        (
            decision,
            creative,
            line_item,
            advertiser,
            viewer,
            title,
            ad_break,
            position,
            device,
            region,
            price,
            is_cpm,
            issued,
        ) = values
        claim = TrackingClaim(
            decision_id=str(decision),
            creative_id=int(creative),
            line_item_id=int(line_item),
            advertiser_id=int(advertiser),
            viewer_id=int(viewer),
            title_id=int(title),
            ad_break_id=int(ad_break),
            position=int(position),
            device=str(device),
            region=str(region),
            price_micros=int(price),
            is_cpm=bool(is_cpm),
            issued_at=datetime.fromtimestamp(int(issued), tz=UTC),
        )
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidToken("forged") from None
    if at - claim.issued_at > TOKEN_TTL:
        raise InvalidToken("expired")
    return claim
