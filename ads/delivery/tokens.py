"""Tracking tokens: what a tracking link or a reported event proves, unreadable to the viewer.

A token names the decision, the slot (creative, line item, position), the viewer, the title and
break, the price, and when it was issued. It travels on viewers' devices, so it is encrypted,
not only signed: nobody can read the price or the advertiser out of it, and a changed byte
makes it invalid. It expires TOKEN_TTL after the decision.

The format is URL-safe base64 (no padding) of AES-SIV (RFC 5297, `cryptography`'s AESSIV) of
the claim's values as compact JSON. AES-SIV is deterministic authenticated encryption: it needs
no nonce, so there is no nonce to repeat (AES-GCM's random 96-bit nonces would wear a key out
after about 2^32 tokens, a few days of decisions); identical plaintexts would give identical
tokens, and none are identical, as each carries its decision's random id and its position.
The key is derived (HKDF-SHA256) from the secret key; tokens made under SECRET_KEY_FALLBACKS
stay valid, tried after the current key, so a secret rotates without losing the tokens in
flight. Event ingestion reads up to 1,000 tokens a batch: the ciphers are built once per
secret, and the JSON decoded without the wrappers of `json.loads` (bench/tokens.py).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import NamedTuple

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

TOKEN_TTL = timedelta(hours=4)
# How far a reported event time may lie before its decision, or after the server's clock.
CLOCK_SKEW = timedelta(minutes=5)
SALT = "interlude.tracking.v2"  # v1: HMAC-signed, readable base64 JSON
_DECODER = json.JSONDecoder()
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE_ALPHABET = bytes.maketrans(b"+/", b"-_")


class InvalidToken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackingClaim(NamedTuple):
    """Immutable; a NamedTuple rather than a frozen dataclass, which takes five times as long
    to build (a batch reads 1,000)."""

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


@cache
def _ciphers() -> tuple[AESSIV, ...]:
    """AES-256-SIV keyed from the secret, then from each fallback. Derived again when a test
    changes the settings."""
    return tuple(
        AESSIV(
            HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=SALT.encode()).derive(
                key.encode()
            )
        )
        for key in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    )


@receiver(setting_changed)
def _secret_changed(*, setting: str, **kwargs: object) -> None:
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        _ciphers.cache_clear()


def make_token(claim: TrackingClaim) -> str:
    # The claim's values in order, up to the price (a slice of the tuple), then the flag and
    # the instant as integers. orjson writes the same compact JSON as json.dumps for these
    # ASCII strings and integers.
    values = (*claim[:11], int(claim.is_cpm), int(claim.issued_at.timestamp()))
    sealed = _ciphers()[0].encrypt(orjson.dumps(values), None)
    # base64.urlsafe_b64encode's steps, without its wrappers (a decision makes one a slot).
    encoded = binascii.b2a_base64(sealed, newline=False).translate(_TO_URLSAFE_ALPHABET)
    return encoded.rstrip(b"=").decode()


def read_token(token: str, *, at: datetime) -> TrackingClaim:
    """The claim a token carries; InvalidToken("forged") or ("expired") otherwise."""
    try:
        encoded = token.encode("ascii")
        # Strict: only the URL-safe alphabet, no padding, and the one encoding of its bytes
        # (base64's last character may carry unused bits: another token for the same bytes).
        if b"=" in encoded:
            raise ValueError("Padding")
        padded = encoded.translate(_TO_STANDARD_ALPHABET) + b"=" * (-len(encoded) % 4)
        sealed = binascii.a2b_base64(padded, strict_mode=True)
        if base64.urlsafe_b64encode(sealed).rstrip(b"=") != encoded:
            raise ValueError("Not the canonical encoding")
    except (UnicodeError, AttributeError, ValueError):  # binascii.Error is a ValueError
        raise InvalidToken("forged") from None
    for cipher in _ciphers():
        try:
            plain = cipher.decrypt(sealed, None)
            break
        except (InvalidTag, ValueError):  # ValueError: shorter than the tag
            continue
    else:
        raise InvalidToken("forged")
    try:
        text = plain.decode()
        values, end = _DECODER.raw_decode(text)
        if end != len(text):
            raise ValueError("Trailing data")
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
        # Values as make_token wrote them (the tag proves it): no conversions.
        claim = TrackingClaim(
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
            bool(is_cpm),
            datetime.fromtimestamp(issued, tz=UTC),
        )
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        raise InvalidToken("forged") from None
    if at - claim.issued_at > TOKEN_TTL:
        raise InvalidToken("expired")
    return claim
