"""The number checker: an answer's numbers must be the tool results' numbers, as written,
rounded, in percent, in thousands or as an absolute change; any other number is reported."""

import pytest

from insights.checker import unsupported_numbers

RESULTS = [
    {
        "values": {"impressions": 12345, "spend": 1234.56, "ctr": 2.78, "share": 0.1234},
        "change": -11,
        "period": {"label": "last week (Nov 23 – Nov 29, 2026)", "start": "2026-11-23"},
    }
]


@pytest.mark.parametrize(
    "answer",
    [
        "12,345 impressions and $1,234.56 spent.",
        "About 12.3k impressions, $1,235 spent, CTR 2.8%.",
        "CTR 2.78%, a share of 12.34%.",
        "Clicks were down 11 from Nov 23 to Nov 29, 2026.",
        "Spend was €1234.6.",
    ],
)
def test_numbers_from_the_results_pass(answer):
    assert unsupported_numbers(answer, results=RESULTS) == []


@pytest.mark.parametrize(
    ("answer", "wrong"),
    [
        ("12,346 impressions.", ["12,346"]),
        ("CTR 3.1%, spend $1,234.56.", ["3.1%"]),
        ("About 15k impressions.", ["15k"]),
        ("Reach was 999 viewers and 12,345 impressions.", ["999"]),
    ],
)
def test_other_numbers_are_reported(answer, wrong):
    assert unsupported_numbers(answer, results=RESULTS) == wrong


def test_numbers_of_the_question_may_be_repeated():
    assert unsupported_numbers("Your top 5:", results=RESULTS, question="top 5 titles") == []
