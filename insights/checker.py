"""Every number in an LLM's answer must come from that turn's tool results (Tableau Pulse's
rule: the model rephrases computed facts). A number passes when it equals a number of the
results, or of the question, as written or rounded (to the precision the answer writes it),
in percent for a fraction, in thousands or millions ("12.3k", "1.2M"), or as an absolute
value ("down 11" for a change of −11). Anything else is a number no tool produced.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

NUMBER = re.compile(r"(?<![\w.])[-+−]?[$€£¥₹]?(\d[\d,]*(?:\.\d+)?)\s?(k|m|bn|%)?(?![\w])", re.I)
SCALES = {"k": Decimal(1000), "m": Decimal(1_000_000), "bn": Decimal(1_000_000_000)}


def _numbers_in_text(text: str) -> list[Decimal]:
    found = []
    for match in re.finditer(r"\d+(?:\.\d+)?", text.replace(",", "")):
        try:
            found.append(Decimal(match.group(0)))
        except InvalidOperation:
            continue
    return found


def source_numbers(*sources: Any) -> set[Decimal]:
    """Every number in tool results (values, and digits inside strings: dates, labels),
    with list lengths (an answer may count the rows it was given)."""
    found: set[Decimal] = set()

    def walk(value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float | Decimal):
            found.add(abs(Decimal(str(value))))
        elif isinstance(value, str):
            found.update(_numbers_in_text(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            found.add(Decimal(len(value)))
            for item in value:
                walk(item)

    for source in sources:
        walk(source)
    return found


def _places(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _matches(value: Decimal, places: int, known: set[Decimal]) -> bool:
    tolerance = Decimal(5) / (Decimal(10) ** (places + 1))
    for candidate in known:
        for form in (candidate, candidate * 100):
            if abs(form - value) <= tolerance:
                return True
    return False


def unsupported_numbers(answer: str, *, results: list[Any], question: str = "") -> list[str]:
    """The numbers of `answer` that no result (nor the question) gives."""
    known = source_numbers(results, question)
    missing = []
    for match in NUMBER.finditer(answer):
        digits, suffix = match.group(1).replace(",", ""), (match.group(2) or "").lower()
        value = Decimal(digits)
        places = _places(digits)
        if suffix in SCALES:
            scaled_places = places - len(str(SCALES[suffix])) + 1
            if _matches(value * SCALES[suffix], scaled_places, known):
                continue
        if not _matches(value, places, known):
            missing.append(match.group(0).strip())
    return missing
