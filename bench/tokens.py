"""Tracking tokens: the CPU to make one (at each slot of a decision) and to read one (at each
event, up to 1,000 a batch), against the goal of under 20 µs per event read (issue 13).

Tokens are encrypted (AES-SIV, ads/delivery/tokens.py). Printed beside them, measured in the
same run: Django's Signer reading the signed, readable format tokens had before (the same
values), and a read under a retired secret (SECRET_KEY_FALLBACKS: one failed decryption
first). Each figure is the best of ROUNDS rounds of process CPU time per operation, so another
process's load moves it little; the machine reference says how fast this machine was.

    python bench/tokens.py
    BENCH_TOKENS=20000 BENCH_ROUNDS=5   (defaults)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _scratch  # noqa: E402  (beside this file)

TOKENS = int(os.environ.get("BENCH_TOKENS", "20000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GOAL_READ_MICROSECONDS = 20.0


def cpu_per_call(operation: Callable[[object], object], items: list) -> float:
    """The best round's process CPU seconds per call of `operation` over `items`."""
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.process_time()
        for item in items:
            operation(item)
        best = min(best, (time.process_time() - began) / len(items))
    return best


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import random

    from django.core import signing
    from django.test import override_settings

    from ads.delivery import tokens

    rng = random.Random(13)
    now = datetime.now(UTC).replace(microsecond=0)
    claims = [
        tokens.TrackingClaim(
            decision_id=f"{rng.getrandbits(128):032x}",
            creative_id=rng.randrange(1, 50_000),
            line_item_id=rng.randrange(1, 20_000),
            advertiser_id=rng.randrange(1, 500),
            viewer_id=rng.randrange(1, 5_000_000),
            title_id=rng.randrange(1, 20_000),
            ad_break_id=rng.randrange(1, 200_000),
            position=rng.randrange(1, 7),
            device=rng.choice(["ctv", "mobile", "web", "tablet"]),
            region=rng.choice(["us_west", "us_east", "us_south", "intl"]),
            price_micros=rng.randrange(1_000, 60_000),
            is_cpm=rng.random() < 0.8,
            issued_at=now,
        )
        for _ in range(TOKENS)
    ]
    print(_scratch.machine_reference())
    print(f"{TOKENS:,} tokens, best of {ROUNDS} rounds, CPU per operation:")

    made = cpu_per_call(tokens.make_token, claims)
    sealed = [tokens.make_token(claim) for claim in claims]
    assert [tokens.read_token(token, at=now) for token in sealed] == claims
    read = cpu_per_call(lambda token: tokens.read_token(token, at=now), sealed)
    forged = [token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB") for token in sealed]
    read_forged = cpu_per_call(_rejecting(tokens, now), forged)

    old_secret = "bench-retired-secret-" + "r" * 40
    with override_settings(SECRET_KEY=old_secret):
        retired = [tokens.make_token(claim) for claim in claims]
    rotated = {"SECRET_KEY": "bench-new-secret-" + "n" * 40, "SECRET_KEY_FALLBACKS": [old_secret]}
    with override_settings(**rotated):
        read_retired = cpu_per_call(lambda token: tokens.read_token(token, at=now), retired)

    signer = signing.Signer(salt="interlude.tracking.v1")
    signed = [signer.sign_object(_values(claim)) for claim in claims]
    read_signed = cpu_per_call(signer.unsign_object, signed)

    length = sum(map(len, sealed)) / len(sealed)
    signed_length = sum(map(len, signed)) / len(signed)
    rows = [
        ("make_token (each slot of a decision)", made),
        ("read_token (each event)", read),
        ("read_token, a forged token", read_forged),
        ("read_token under a retired secret (fallback)", read_retired),
        ("Django Signer.unsign_object, the readable format", read_signed),
    ]
    for name, seconds in rows:
        print(f"  {name:50s} {seconds * 1e6:6.2f} µs")
    print(
        f"  read_token / Signer.unsign_object: {read / read_signed:.2f}; "
        f"token length {length:.0f} characters (signed format {signed_length:.0f})"
    )
    worst = max(read, read_retired, read_forged)
    verdict = "PASS" if worst * 1e6 < GOAL_READ_MICROSECONDS else "MISS"
    print(
        f"Goal: reading a token under {GOAL_READ_MICROSECONDS:g} µs of CPU per event: "
        f"worst {worst * 1e6:.2f} µs   {verdict}"
    )
    return 0


def _rejecting(tokens, now: datetime) -> Callable[[str], None]:
    def read(token: str) -> None:
        try:
            tokens.read_token(token, at=now)
        except tokens.InvalidToken:
            return
        raise AssertionError("a forged token was read")

    return read


def _values(claim) -> list:
    return [*claim[:11], int(claim.is_cpm), int(claim.issued_at.timestamp())]


if __name__ == "__main__":
    sys.exit(main())
