"""How numbers are written for people, in one place: counts and amounts with thousands
separators, amounts with their currency's symbol. Pages use the `numbers` template library
({% load numbers %}: `|count`, `|money:currency`); Python that builds page text (report tiles
and tables, delivery checks) calls these functions. CSV exports write plain numbers instead.

Currencies without a symbol everyone reads the same way are written with their code after the
amount ("1,234.50 CHF"): "$" alone would be ambiguous between USD, CAD and AUD, so only USD
gets it.
"""

import re
from decimal import Decimal

from django import template

DASH = "—"  # an undefined ratio (nothing shown, nothing clicked): not zero

# The symbol a currency is written with, before the amount; any other code follows it.
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}

Number = int | float | Decimal

# A spreadsheet reads a cell that starts with one of these as a formula (OWASP's list), so a
# campaign named '=HYPERLINK("http://x","click")' would become a live link in an export.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?%?")


def count(value: Number | None) -> str:
    """12000 → "12,000"."""
    return DASH if value is None else f"{value:,}"


def amount(value: Number | str | None) -> str:
    """The number of an amount, grouped, two decimals: 12000 → "12,000.00"."""
    return DASH if value is None else f"{Decimal(value):,.2f}"


def currency_affixes(currency: str) -> tuple[str, str]:
    """What goes before and after an amount in `currency`: ("$", "") or ("", " CHF")."""
    symbol = SYMBOLS.get(currency)
    return (symbol, "") if symbol else ("", f" {currency}" if currency else "")


def money(value: Number | str | None, currency: str) -> str:
    """12000 in USD → "$12,000.00"; -5 → "-$5.00"; in CHF → "12,000.00 CHF"."""
    if value is None:
        return DASH
    number = Decimal(value)
    prefix, suffix = currency_affixes(currency)
    sign = "-" if number < 0 else ""
    return f"{sign}{prefix}{amount(abs(number))}{suffix}"


register = template.Library()


@register.filter(name="count")
def count_filter(value: Number | None) -> str:
    return count(value)


@register.filter(name="money")
def money_filter(value: Number | str | None, currency: str) -> str:
    return money(value, currency)


def csv_cell(text: str) -> str:
    """A cell as every CSV export writes it: text that a spreadsheet would run as a formula
    gets a leading apostrophe, which spreadsheets show as text; plain numbers ("-4.50",
    "+12%") stay numbers."""
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
