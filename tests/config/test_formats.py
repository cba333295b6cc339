"""The one way pages write counts and amounts (config/formats.py, `{% load numbers %}`)."""

from decimal import Decimal

from django.template import Context, Template

from config import formats


def test_counts_are_grouped_by_thousands():
    assert formats.count(0) == "0"
    assert formats.count(12000) == "12,000"
    assert formats.count(1234567) == "1,234,567"
    assert formats.count(None) == "—"


def test_money_has_its_symbol_or_its_code_two_decimals_and_groups():
    assert formats.money(Decimal("12000"), "USD") == "$12,000.00"
    assert formats.money(Decimal("0.85"), "EUR") == "€0.85"
    assert formats.money(Decimal("1234.5"), "GBP") == "£1,234.50"
    assert formats.money(Decimal("-5"), "USD") == "-$5.00"
    assert formats.money(Decimal("1234.5"), "CHF") == "1,234.50 CHF"
    assert formats.money(Decimal("0.005"), "USD") == "$0.00"  # half to even, like the reports
    assert formats.money(None, "USD") == "—"


def test_templates_use_the_same_functions():
    template = Template("{% load numbers %}{{ budget|money:currency }} · {{ views|count }}")
    context = Context({"budget": Decimal("12000.00"), "currency": "USD", "views": 15320})
    assert template.render(context) == "$12,000.00 · 15,320"
