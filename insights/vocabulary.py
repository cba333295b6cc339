"""The words the offline planner reads questions with: metrics, breakdowns, "best / worst",
comparisons, series, "why", pacing, the audience, what the tools cannot know (answered with
why, never with something else), and the capitalised words that are not names."""

METRIC_WORDS = [
    ("completion_rate", r"completion rates?|complete rate|vcr|completion|finish(?:ed)? rate"),
    ("completes", r"complet(?:es|ed|ions)|completed views|watched to the end|finished"),
    ("ctr", r"ctr|click[- ]?through(?: rate)?|click rate"),
    ("cpc", r"cpc|cost per click"),
    ("ecpm", r"e?cpm|cost per (?:thousand|mille)"),
    ("clicks", r"clicks?|clicked"),
    ("reach", r"reach|unique viewers|unique people|how many (?:people|viewers)|reached"),
    ("average_frequency", r"frequency|times per viewer"),
    ("spend", r"spend|spent|spending|cost|costs|budget used|money"),
    ("impressions", r"impressions?|views|delivered|delivery|served|shown|plays"),
]
DIMENSION_WORDS = [
    ("line_item", r"line items?|flights?"),
    ("creative", r"creatives?|ads?|spots?|videos?"),
    ("campaign", r"campaigns?"),
    ("genre", r"genres?"),
    ("region", r"regions?|where|areas?"),
    ("device", r"devices?|screens?|platforms?"),
    ("title", r"titles?|shows?|movies?|films?"),
    ("hour", r"hours?|time of day|what time"),
    ("daypart", r"dayparts?|part of the day"),
]
WORST = r"\b(?:worst|lowest|least|poorest|bottom|weakest|underperform\w*)\b"
BEST = r"\b(?:best|top|highest|most|strongest|leading|biggest)\b"
COMPARE = (
    r"\b(?:compared?|comparing|vs\.?|versus|against|than|change[ds]?|week over week|up or down"
    r"|grow(?:th|n)?|improv\w*|drop(?:ped)?)\b"
)
SERIES = (
    r"\b(?:per day|daily|each day|day by day|by day|trend|over time|per week|weekly|each week"
    r"|by week|chart)\b"
)
WHY = (
    r"\b(?:why|not delivering|no (?:impressions|delivery)|stopped|stuck"
    r"|isn'?t (?:running|delivering)|not running|no spend)\b"
)
PACING = (
    r"\b(?:pacing|pace|on track|budget left|remaining budget|budget remaining|left to spend"
    r"|budget|overspend\w*|underspend\w*)\b"
)
AUDIENCE = (
    r"\b(?:audience|who (?:engages|watches|clicks|completes)|engag\w*"
    r"|where (?:do|are) (?:my )?ads)\b"
)
LISTING = (
    r"\b(?:list|what|which) (?:are )?(?:my |the |all )?(campaigns|line items)\b"
    r"|\bcampaigns do i have\b"
)
GENERAL = (
    r"\b(?:how (?:are|is|am|did|do|was|were) (?:my|we|i|the|things)\b|doing|perform\w*"
    r"|results?|numbers|overview|summary|stats)\b"
)
# What the tools cannot know: said plainly rather than answered with something else.
OUT_OF_REACH = [
    (
        r"\b(?:conversions?|sales|purchases?|roas|revenue|installs?|sign[- ]?ups?)\b",
        "I only see delivery data (impressions, quartiles, clicks and spend), not what "
        "viewers did after an ad: conversions, sales and revenue are not here.",
    ),
    (
        r"\b(?:age|gender|income|men|women|male|female|demographics?)\b",
        "Reports are not broken down by age or gender; I can break results down by genre, "
        "region, device, title, hour, daypart, campaign, line item or creative.",
    ),
    (
        r"\b(?:forecast|predict\w*|next (?:week|month)|tomorrow|will (?:i|we|it))\b",
        "I report what happened, not forecasts.",
    ),
    (
        r"\b(?:other (?:advertisers?|accounts?|brands?|customers?)|every advertiser"
        r"|all advertisers|competitors?|platform[- ]wide|whole platform)\b",
        "I can only see this account's own data.",
    ),
    (
        r"\b(?:system prompt|your instructions|your prompt|ignore (?:all |the )?previous"
        r"|developer mode|api key|password)\b",
        "I answer questions about this account's results, and nothing else.",
    ),
    (
        r"\b(?:sql|select \*|drop table|delete|pause|archive|(?:change|raise|lower|set) the "
        r"(?:bid|budget))\b",
        "I only read results: I can't run queries or change campaigns. Use the campaign "
        "pages for changes.",
    ),
]
HELP = (
    "I can answer questions about this account's results: a metric (impressions, clicks, CTR, "
    "completion rate, spend, eCPM, CPC, reach) for a period and a campaign, line item or "
    "creative; a breakdown by genre, region, device, title, hour or daypart; a comparison "
    "of two periods; pacing and budget left; and why a line item is not delivering."
)
# Capitalised words that are not names the person means.
COMMON_CAPITALS = {
    "how", "what", "which", "why", "when", "where", "who", "did", "does", "do", "is", "was",
    "are", "show", "give", "tell", "list", "compare", "and", "i", "my", "the", "a", "in", "on",
    "for", "of", "ctr", "cpc", "cpm", "ecpm", "tv", "vcr", "us", "ok", "please", "can", "could",
    "since", "last", "this", "from", "to", "vs", "what's", "whats", "yesterday", "today",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "hello", "hi",
}  # fmt: skip

MONTH_WORDS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
}  # fmt: skip
