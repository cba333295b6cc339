"""The staff title page (/staff/titles/<id>/): the title's audience retention curve with its ad
breaks marked, each break's abandonment against the curve's baseline, the nightly analysis's
recommendation, and a form that applies it (recorded: who, when, breaks before and after).

Staff only, like every staff page (`staff_views.staff_view`). Every figure comes from
`engagement.selectors`; applying goes through `engagement.services.break_placement_apply`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from analytics.reports import percent
from analytics.staff_views import clock, staff_view
from catalog.models import Title
from engagement import selectors as engagement_selectors
from engagement import services as engagement_services
from engagement.models import BreakPlacement
from ml.models import ModelKind


class BreakApplyForm(forms.Form):
    """Which of the analysis's moves and drops to apply; the analysis must still be the
    title's latest (a page left open over a night would apply an older one)."""

    placement = forms.IntegerField(widget=forms.HiddenInput)
    breaks = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one recommendation to apply."},
    )

    def __init__(self, *args: Any, placement: BreakPlacement, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latest = placement
        self.fields["placement"].initial = placement.pk
        self.fields["breaks"].choices = [
            (str(r["break_id"]), describe(r))
            for r in placement.analysis["recommendations"]
            if r["action"] != "keep"
        ]
        self.fields["breaks"].initial = [value for value, _ in self.fields["breaks"].choices]

    def clean_placement(self) -> int:
        value = self.cleaned_data["placement"]
        if value != self.latest.pk:
            raise ValidationError(
                "A newer analysis of this title has arrived since this page was loaded: "
                "review it below and apply again."
            )
        return value


def describe(recommendation: dict) -> str:
    where = clock(recommendation["offset_seconds"])
    change = (
        f"leaving at or just after it {percent(recommendation['abandonment_before'])} → "
        f"{percent(recommendation['abandonment_after'])}, "
        f"ad seconds per session {recommendation['ad_seconds_change']:+.1f}"
    )
    if recommendation["action"] == "move":
        return (
            f"Move the break at {where} to {clock(recommendation['to_offset_seconds'])} ({change})"
        )
    if recommendation["action"] == "drop":
        return f"Drop the break at {where} ({change})"
    return f"Keep the break at {where}"


def curve_chart(analysis: dict) -> dict:
    """The curve, the content's drop-off, and the breaks as points on the curve."""
    curve = analysis["curve"]
    return {
        "minutes": list(range(len(curve))),
        "curve": curve,
        "breaks": [
            {
                "minute": item["offset_seconds"] / 60,
                "share": curve[min(item["offset_seconds"] // 60, len(curve) - 1)],
                "abandonment": item["abandonment"],
                "baseline": item["baseline"],
            }
            for item in analysis["breaks"]
        ],
        "moves": [
            {
                "minute": r["to_offset_seconds"] / 60,
                "share": curve[min(r["to_offset_seconds"] // 60, len(curve) - 1)],
            }
            for r in analysis["recommendations"]
            if r["action"] == "move"
        ],
    }


def break_rows(analysis: dict) -> list[dict]:
    actions = {r["break_id"]: r for r in analysis["recommendations"]}
    return [
        {
            "at": clock(item["offset_seconds"]),
            "reached": item["reached"],
            "abandonment": percent(item["abandonment"]),
            # Analyses stored before this figure have none.
            "during_ads": percent(item["left_during_ads"] / item["reached"])
            if "left_during_ads" in item and item["reached"]
            else "—",
            "baseline": percent(item["baseline"]),
            "excess": percent(item["excess"]),
            "pod_seconds": f"{item['pod_seconds']:.0f}",
            "recommendation": describe(actions[item["id"]]) if item["id"] in actions else "—",
        }
        for item in analysis["breaks"]
    ]


@staff_view
def title_breaks(request: HttpRequest, title_id: int) -> HttpResponse:
    title = Title.objects.filter(pk=title_id).first()
    if title is None:
        raise Http404("No such title.")
    placement = engagement_selectors.break_placement_latest(title_id=title_id)
    form = None
    if placement is not None:
        form = BreakApplyForm(request.POST or None, placement=placement)
    if request.method == "POST":
        if form is None:
            raise Http404("This title has no analysis to apply.")
        if form.is_valid():
            try:
                engagement_services.break_placement_apply(
                    placement=placement,
                    break_ids={int(value) for value in form.cleaned_data["breaks"]},
                    user=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, "The title's ad breaks were changed.")
                return redirect("staff_title", title_id=title_id)
    ad_breaks = list(title.ad_breaks.order_by("offset_seconds"))
    context = {
        "title": title,
        "placement": placement,
        "form": form,
        "ad_breaks": [(clock(b.offset_seconds), b.max_pod_duration_seconds) for b in ad_breaks],
        "changes": [
            {
                "at": change.changed_at,
                "by": change.changed_by.get_username() if change.changed_by else "—",
                "before": ", ".join(clock(offset) for _, offset, _ in change.before),
                "after": ", ".join(clock(offset) for _, offset, _ in change.after),
            }
            for change in engagement_selectors.ad_break_changes(title_id=title_id)
        ],
        "model_kinds": ModelKind.choices,
        "min_sessions": engagement_selectors.break_placement_min_sessions(),
    }
    if placement is not None:
        analysis = placement.analysis
        context |= {
            "chart": curve_chart(analysis),
            "break_rows": break_rows(analysis),
            "summary": {
                "sessions": analysis["sessions"],
                # Stored before the figure became the leavers during the ads (session 10's
                # change): the same keys held the leavers at or just after a break.
                "counts_during_ads": all("left_during_ads" in b for b in analysis["breaks"]),
                "before": percent(analysis["abandonment_at_breaks"]),
                "after": percent(analysis["expected_abandonment_at_breaks"]),
                "ad_before": f"{analysis['ad_seconds_per_session']:.0f}",
                "ad_after": f"{analysis['expected_ad_seconds_per_session']:.0f}",
            },
        }
    status = 400 if request.method == "POST" else 200
    return render(request, "analytics/staff/title.html", context, status=status)
