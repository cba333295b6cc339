"""The offline planner: reads a question the way an advertiser writes it — a metric, a campaign,
line item or creative by name (typos tolerated), a period, a breakdown, a comparison, "why",
"which … best / worst" — calls the same tools the LLM would, and answers from templates.

It keeps what the last question was about (the intent), so follow-ups work: "and for Summer
Refresh?" changes the scope, "what about last month?" the period. What it cannot read it says
so, instead of answering something else.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from insights import answers, tools
from insights.periods import PeriodError, find_period
from insights.tools.base import Context
from insights.tools.scope import candidates, normalized
from insights.vocabulary import (
    AUDIENCE,
    BEST,
    COMMON_CAPITALS,
    COMPARE,
    DIMENSION_WORDS,
    GENERAL,
    HELP,
    LISTING,
    METRIC_WORDS,
    MONTH_WORDS,
    OUT_OF_REACH,
    PACING,
    SERIES,
    WHY,
    WORST,
)

# The rollups keep these per line item: a creative's own is not there to read.
CAMPAIGN_OR_LINE_ITEM_ONLY = ("time_series", "breakdown", "engaged_audience")


@dataclass
class Intent:
    """What a question asks: the tool and the arguments it needs, kept for the follow-up."""

    tool: str = ""
    metric: str | None = None
    dimension: str | None = None
    order: str = "best"
    period: str = ""
    previous_period: str = ""
    scope_kind: str = ""
    scope_ref: str = ""
    granularity: str = "day"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Answer:
    text: str
    calls: list[tools.ToolCall] = field(default_factory=list)
    intent: dict = field(default_factory=dict)
    refused: bool = False
    chart: dict | None = None
    table: dict | None = None


def _first(patterns: list[tuple[str, str]], text: str) -> str | None:
    """The key of the pattern matched earliest in `text`."""
    found = []
    for key, pattern in patterns:
        match = re.search(rf"\b(?:{pattern})\b", text)
        if match:
            found.append((match.start(), -len(match.group(0)), key))
    return min(found)[2] if found else None


def _dimension(text: str) -> str | None:
    """A breakdown asked for: "by genre", "per device", "which creative", "top titles"."""
    for key, pattern in DIMENSION_WORDS:
        if re.search(
            rf"\b(?:by|per|each|which|what|top|best|worst|across|every)\b(?: \w+){{0,2}} "
            rf"(?:{pattern})\b",
            text,
        ):
            return key
    return None


@dataclass(frozen=True)
class NamedScope:
    kind: str
    ref: str  # the id, as text
    name: str


def _find_name(context: Context, question: str) -> NamedScope | None:
    """The campaign, line item or creative the question names (exact, then close spelling),
    or an explicit id ("campaign 12", "line item #7")."""
    text = normalized(question)
    explicit = re.search(r"\b(campaign|line item|creative)s? (?:id )?#?(\d+)\b", question.lower())
    if explicit:
        kind = explicit.group(1).replace(" ", "_")
        return NamedScope(kind, explicit.group(2), "")
    best: tuple[float, int, NamedScope] | None = None
    words = text.split()
    for rank, kind in enumerate(("creative", "line_item", "campaign")):
        for pk, name in candidates(context, kind):
            key = normalized(name)
            if not key:
                continue
            if f" {key} " in f" {text} ":
                score = 1.0 + len(key) / 1000
            else:
                size = len(key.split())
                score = 0.0
                for width in {max(1, size - 1), size, size + 1}:
                    for start in range(0, max(1, len(words) - width + 1)):
                        window = " ".join(words[start : start + width])
                        ratio = difflib.SequenceMatcher(None, window, key).ratio()
                        score = max(score, ratio)
                name_words = key.split()
                for width in range(2, size):  # the start of a longer name: "zero sugar"
                    if f" {' '.join(name_words[:width])} " in f" {text} ":
                        score = max(score, 0.9 + width / size * 0.05)
                # A part of a name made of parts ("Prime-time TV" of "Summer Refresh ·
                # Prime-time TV"), when the part is a few words of its own.
                for part in re.split(r"\s[·|:/–-]\s", name)[1:]:
                    part_key = normalized(part)
                    if len(part_key.split()) >= 2 and f" {part_key} " in f" {text} ":
                        score = max(score, 0.9 + len(part_key) / len(key) * 0.05)
                if score < 0.84 or size == 1 and score < 0.9:
                    continue
            candidate = (score, -rank, NamedScope(kind, str(pk), name))
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return best[2] if best else None


def _campaigns_named(context: Context, text: str) -> int:
    """How many of the account's campaigns the text names, in full or by their first words."""
    padded = f" {normalized(text)} "
    count = 0
    for _, name in candidates(context, "campaign"):
        words = normalized(name).split()
        if any(
            f" {' '.join(words[:width])} " in padded
            for width in range(min(2, len(words)), len(words) + 1)
        ):
            count += 1
    return count


def _unknown_name(context: Context, question: str) -> str | None:
    """A capitalised name in the question that is nothing of this account's ("How did
    Northwind Motors do?" asked in Fizzy's account): said not found, never answered for the
    whole account instead."""
    known = {normalized(context.advertiser.name)}
    for kind in ("campaign", "line_item", "creative"):
        known |= {normalized(name) for _, name in candidates(context, kind)}
    known_words = {word for name in known for word in name.split()}
    vocabulary = "|".join(pattern for _, pattern in METRIC_WORDS + DIMENSION_WORDS)
    for match in re.finditer(r"(?:[A-Z][\w'’-]+)(?: [A-Z][\w'’-]+)*", question):
        words = [
            word
            for word in normalized(match.group(0)).split()
            if word not in COMMON_CAPITALS
            and word not in MONTH_WORDS
            and not re.fullmatch(vocabulary, word)
        ]
        if not words or (match.start() == 0 and len(match.group(0).split()) == 1):
            continue  # a capital that starts the sentence is not a name by itself
        if all(
            word in known_words or difflib.get_close_matches(word, known_words, n=1, cutoff=0.8)
            for word in words
        ):
            continue
        return " ".join(match.group(0).split())
    return None


def understand(
    context: Context, question: str, *, previous: dict | None = None, page_scope: dict | None = None
) -> Intent | str:
    """The intent of `question`, or the sentence that says why it cannot be answered."""
    text = " ".join(question.lower().split())
    named = _find_name(context, question)
    # The account's own names are not requests ("Ignore previous instructions…" may be one).
    unnamed = normalized(text).replace(normalized(named.name), " ") if named else text
    for pattern, refusal in OUT_OF_REACH:
        if re.search(pattern, unnamed):
            return refusal
    if named is None:
        unknown = _unknown_name(context, question)
        if unknown:
            return f"I found no campaign, line item or creative named “{unknown}” in this account."
    try:
        found = find_period(text, today=context.today)
    except PeriodError as error:
        return str(error)
    period = found[1] if found else ""
    rest = text.replace(period, " ") if period else text
    second = None
    if period:
        try:
            second = find_period(rest, today=context.today)
        except PeriodError:
            second = None
    metric = _first(METRIC_WORDS, text)
    dimension = _dimension(rest)
    intent = Intent(metric=metric, period=period)
    if named:
        intent.scope_kind, intent.scope_ref = named.kind, named.ref

    if re.search(LISTING, text) and not metric:
        intent.tool = "list_line_items" if "line item" in text else "list_campaigns"
    elif re.search(WHY, text) and (named or (previous or {}).get("scope_kind") or page_scope):
        intent.tool = "why_not_delivering"
    elif re.search(WHY, text):
        return "Which line item or campaign should I check? Name it in the question."
    elif re.search(PACING, text) and not dimension and metric in (None, "spend"):
        intent.tool = "pacing"
    elif re.search(AUDIENCE, text):
        intent.tool = "engaged_audience"
    elif _campaigns_named(context, text) >= 2 and re.search(rf"{COMPARE}|\band\b", text):
        # "Compare Summer Refresh and Zero Sugar Launch": the campaigns side by side.
        intent.tool, intent.dimension, intent.order = "breakdown", "campaign", "best"
        intent.scope_kind = intent.scope_ref = ""
    elif dimension and not (named and dimension == named.kind):
        intent.tool = "breakdown"
        intent.dimension = dimension
        if re.search(WORST, text):
            intent.order = "worst"
        elif re.search(BEST, text):
            intent.order = "best"
        elif dimension in ("hour", "daypart") and not previous:
            intent.order = "chronological"
        else:
            intent.order = ""  # unsaid: the question before's, else best first
    elif re.search(COMPARE, text) or second:
        intent.tool = "compare_periods"
        intent.previous_period = second[1] if second else ""
    elif re.search(SERIES, text):
        intent.tool = "time_series"
        intent.granularity = "week" if re.search(r"\bweek(?:ly)?\b|per week", text) else "day"
        if intent.metric not in tools.metrics.SERIES_METRICS:
            intent.metric = "impressions" if intent.metric is None else intent.metric
    elif metric or named or period or re.search(GENERAL, text):
        intent.tool = "get_kpis"
    elif previous and re.match(r"^(?:and|what about|how about|same for|and for|now)\b", text):
        intent.tool = previous["tool"]
    else:
        return "I can't tell what to look up. " + HELP

    return _follow_up(intent, text, previous, page_scope)


def _follow_up(intent: Intent, text: str, previous: dict | None, page_scope: dict | None) -> Intent:
    """Fill what the question leaves out from the question before it ("and for Summer
    Refresh?", "what about last month?"), else from the page it was asked on."""
    is_follow_up = bool(
        previous and re.match(r"^(?:and|what about|how about|same|and for|now|then|ok)\b", text)
    )
    if is_follow_up and previous and intent.tool == previous.get("tool"):
        intent.metric = intent.metric or previous.get("metric")
        intent.order = intent.order or previous.get("order", "")
    if is_follow_up and previous:
        changed_only_scope_or_period = intent.tool == "get_kpis" and not intent.metric
        if changed_only_scope_or_period:
            intent.tool = previous["tool"]
            intent.metric = previous.get("metric")
            intent.dimension = previous.get("dimension")
            intent.order = previous.get("order", "best")
            intent.granularity = previous.get("granularity", "day")
        if not intent.period:
            intent.period = previous.get("period", "")
            intent.previous_period = previous.get("previous_period", "")
        if not intent.scope_kind:
            intent.scope_kind = previous.get("scope_kind", "")
            intent.scope_ref = previous.get("scope_ref", "")
    if not intent.scope_kind and page_scope:
        intent.scope_kind, intent.scope_ref = page_scope["kind"], str(page_scope["id"])
    intent.order = intent.order or "best"
    return intent


def arguments_for(intent: Intent) -> dict:
    """The tool arguments of an intent: the same the LLM would pass."""
    scope = {intent.scope_kind: intent.scope_ref} if intent.scope_kind else {}
    period = {"period": intent.period} if intent.period else {}
    if intent.tool == "list_campaigns":
        return {}
    if intent.tool == "list_line_items":
        return {k: v for k, v in scope.items() if k == "campaign"}
    if intent.tool == "why_not_delivering" or intent.tool == "pacing":
        return {k: v for k, v in scope.items() if k in ("campaign", "line_item")}
    if intent.tool == "get_kpis":
        return {**period, **scope}
    if intent.tool == "compare_periods":
        previous = {"previous_period": intent.previous_period} if intent.previous_period else {}
        return {"period": intent.period or "last 7 days", **previous, **scope}
    narrow = {k: v for k, v in scope.items() if k in ("campaign", "line_item")}
    if intent.tool == "time_series":
        return {
            "metric": intent.metric or "impressions",
            "granularity": intent.granularity,
            **period,
            **narrow,
        }
    if intent.tool == "breakdown":
        if intent.dimension == "campaign":
            narrow = {}
        chronological = intent.order == "chronological"
        return {
            "dimension": intent.dimension,
            **({"top_n": 24} if chronological else {}),
            "metric": intent.metric
            if intent.metric in tools.metrics.BREAKDOWN_METRICS
            else "impressions",
            "order": intent.order,
            **period,
            **narrow,
        }
    return {**period, **narrow}  # engaged_audience


def answer(
    context: Context, question: str, *, previous: dict | None = None, page_scope: dict | None = None
) -> Answer:
    """The offline answer to `question` in the context's account."""
    intent = understand(context, question, previous=previous, page_scope=page_scope)
    if isinstance(intent, str):
        return Answer(text=intent, refused=True, intent=previous or {})
    if intent.scope_kind == "creative" and intent.tool in CAMPAIGN_OR_LINE_ITEM_ONLY:
        return Answer(
            text="Series, breakdowns and the audience are kept per campaign and line item, "
            "not per creative: ask about the creative's line item, or for the totals of the "
            "creative.",
            refused=True,
            intent=intent.as_dict(),
        )
    record = tools.call(context, intent.tool, arguments_for(intent))
    if record.error:
        return Answer(text=record.error, calls=[record], intent=intent.as_dict(), refused=True)
    metric = intent.metric if intent.tool in ("get_kpis", "compare_periods") else None
    chart, table = answers.visual_for(record.result)
    text = answers.text_for(record.result, metric)
    calls = [record]
    if _nothing_compared(record.result):
        # Both periods empty (a campaign that started since): say what it did do lately.
        lately = tools.call(context, "get_kpis", {**_scope_arguments(intent)})
        if not lately.error and lately.result["values"]["impressions"]:
            calls.append(lately)
            text += " Lately: " + answers.text_for(lately.result, metric)
            chart, table = answers.visual_for(lately.result)
    return Answer(text=text, calls=calls, intent=intent.as_dict(), chart=chart, table=table)


def _nothing_compared(result: dict) -> bool:
    if result.get("kind") != "comparison":
        return False
    impressions = result["metrics"]["impressions"]
    return impressions["current"] == 0 and impressions["previous"] == 0


def _scope_arguments(intent: Intent) -> dict:
    return {intent.scope_kind: intent.scope_ref} if intent.scope_kind else {}
