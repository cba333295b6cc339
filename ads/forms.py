"""Forms of the advertiser web app. They parse and render; the writes go through
`ads.services`, which validate again, so the API and admin get the same rules."""

from datetime import datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone

from ads import selectors
from ads.models import AccountKey, Advertiser, Campaign, Creative, LineItem, http_url
from catalog import selectors as catalog_selectors

# Labels of the targeting fields, shared by the form and the line item page.
TARGETING_LABELS = {
    "target_maturity_ratings": "Maturity ratings",
    "target_regions": "Regions",
    "target_devices": "Devices",
    "target_age_bands": "Age bands",
    "target_dayparts": "Dayparts",
    "target_genres": "Genres",
    "include_titles": "Only these titles",
    "exclude_titles": "Never these titles",
}

EVERYONE = "Leave all unchecked to reach everyone."
TITLE_PICKER = {"size": 8, "data-title-picker": ""}
# The amounts of a line item, shown with the account's currency.
AMOUNT_LABELS = {"bid": "Bid", "daily_budget": "Daily budget", "lifetime_budget": "Lifetime budget"}


def targeting_summary(line_item: LineItem) -> list[tuple[str, list[str], str]]:
    """Each targeting rule of `line_item` as (label, its values' labels, what empty means),
    for showing the rules the way the form asks for them."""
    rules = []
    for field, choices in LineItem.TARGETING_CHOICES.items():
        labels = dict(choices.choices)
        values = [labels.get(value, value) for value in getattr(line_item, field)]
        rules.append((TARGETING_LABELS[field], values, "Any"))
    for field, empty in (
        ("target_genres", "Any"),
        ("include_titles", "Any title"),
        ("exclude_titles", "None"),
    ):
        values = [str(related) for related in getattr(line_item, field).all()]
        rules.append((TARGETING_LABELS[field], values, empty))
    return rules


def add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError on the form: on the field it names when the form has
    that field, otherwise above the form (a service may name a field this form does not edit,
    and `form.add_error` would raise on it)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        if field in form.fields or field == NON_FIELD_ERRORS:
            form.add_error(None if field == NON_FIELD_ERRORS else field, errors)
        else:
            form.add_error(None, [f"{field}: {message}" for e in errors for message in e])


class DateInput(forms.DateInput):
    input_type = "date"


class DateTimeLocalInput(forms.DateTimeInput):
    """A `datetime-local` input. Django reads and shows its value in the current time zone,
    which the advertiser views set to the account's."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class FieldsetsMixin:
    """Lets a template render a long form in labelled groups: `form.fieldsets`, each
    (legend, bound fields, whether it spans the page's width in a sectioned layout)."""

    fieldset_layout: list[tuple[str, list[str]]] = []
    wide_fieldsets: frozenset[str] = frozenset()

    def fieldsets(self):
        # A create form has one field more (the parent) than its edit form; skip what is absent.
        return [
            (legend, [self[name] for name in names if name in self.fields], legend in self.wide)
            for legend, names in self.fieldset_layout
        ]

    @property
    def wide(self) -> frozenset[str]:
        return self.wide_fieldsets


class CampaignForm(FieldsetsMixin, forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "objective", "start_date", "end_date"]
        widgets = {"start_date": DateInput(), "end_date": DateInput()}
        labels = {"start_date": "Starts", "end_date": "Ends"}

    fieldset_layout = [("Campaign", ["name", "objective", "start_date", "end_date"])]


class LineItemForm(FieldsetsMixin, forms.ModelForm):
    """Edits a line item's settings and targeting. Its campaign never changes after creation,
    so only `LineItemCreateForm` has that field."""

    target_maturity_ratings = forms.MultipleChoiceField(required=False)
    target_regions = forms.MultipleChoiceField(required=False)
    target_devices = forms.MultipleChoiceField(required=False)
    target_age_bands = forms.MultipleChoiceField(required=False)
    target_dayparts = forms.MultipleChoiceField(required=False)
    target_genres = forms.ModelMultipleChoiceField(
        queryset=catalog_selectors.genres(), required=False, widget=forms.CheckboxSelectMultiple
    )
    # ~1,700 titles: a plain multi-select (ctrl/cmd-click) keeps the page usable without JS;
    # static/js/title_picker.js adds a search box, click-to-toggle and the picked titles.
    include_titles = forms.ModelMultipleChoiceField(
        queryset=catalog_selectors.titles(),
        required=False,
        widget=forms.SelectMultiple(attrs=TITLE_PICKER),
        help_text="Empty means every title. Without scripts, Ctrl/Cmd-click to pick several.",
    )
    exclude_titles = forms.ModelMultipleChoiceField(
        queryset=catalog_selectors.titles(),
        required=False,
        widget=forms.SelectMultiple(attrs=TITLE_PICKER),
        help_text="Without scripts, Ctrl/Cmd-click to pick several.",
    )

    class Meta:
        model = LineItem
        fields = list(LineItem.EDITABLE_FIELDS)
        widgets = {"start_at": DateTimeLocalInput(), "end_at": DateTimeLocalInput()}
        help_texts = {"end_at": "Leave empty to run until stopped."}
        labels = {
            "start_at": "Starts",
            "end_at": "Ends",
            "frequency_cap_hour": "Per viewer per hour",
            "frequency_cap_day": "Per viewer per day",
            "frequency_cap_lifetime": "Per viewer, lifetime",
        }

    fieldset_layout = [
        ("Flight", ["campaign", "name", "start_at", "end_at"]),
        ("Price and budget", ["pricing", "bid", "daily_budget", "lifetime_budget", "pacing"]),
        (
            "Frequency caps (empty: no cap)",
            ["frequency_cap_hour", "frequency_cap_day", "frequency_cap_lifetime"],
        ),
        ("Audience", [*LineItem.TARGETING_CHOICES, "target_genres"]),
        ("Titles", ["include_titles", "exclude_titles"]),
    ]
    wide_fieldsets = frozenset({"Audience", "Titles"})

    def __init__(self, *args, advertiser: Advertiser | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if advertiser is None and self.instance.advertiser_id:
            advertiser = self.instance.advertiser
        for name, choices in LineItem.TARGETING_CHOICES.items():
            field = self.fields[name]
            field.choices = choices.choices
            field.widget = forms.CheckboxSelectMultiple(choices=choices.choices)
            field.help_text = EVERYONE
        self.fields["target_genres"].help_text = EVERYONE
        for name, label in TARGETING_LABELS.items():
            self.fields[name].label = label
        if advertiser is not None:
            for name, label in AMOUNT_LABELS.items():
                self.fields[name].label = f"{label} ({advertiser.currency})"
        self.fields["bid"].help_text = "Per 1,000 impressions (CPM) or per click (CPC)."


def start_default(*, advertiser: Advertiser, campaign: Campaign | None = None) -> datetime:
    """Where a new line item starts unless told: the next full hour in the account's zone,
    or its campaign's first day if that is later."""
    local = timezone.localtime(timezone.now(), advertiser.tzinfo)
    start = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if campaign is not None and campaign.start_date > start.date():
        start = datetime.combine(campaign.start_date, time(0), tzinfo=advertiser.tzinfo)
    return start


class ReachForm(forms.Form):
    """The line item form's targeting (and price, for what the budget buys), read by the reach
    preview while the form is being filled in: nothing is required, wrong values are named."""

    pricing = forms.ChoiceField(choices=LineItem.Pricing.choices, required=False)
    bid = forms.DecimalField(min_value=Decimal("0.0001"), max_digits=10, required=False)
    daily_budget = forms.DecimalField(min_value=Decimal("0.01"), max_digits=12, required=False)
    target_genres = forms.ModelMultipleChoiceField(
        queryset=catalog_selectors.genres(), required=False
    )
    include_titles = forms.ModelMultipleChoiceField(
        queryset=catalog_selectors.titles(), required=False
    )
    exclude_titles = forms.ModelMultipleChoiceField(
        queryset=catalog_selectors.titles(), required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, choices in LineItem.TARGETING_CHOICES.items():
            self.fields[name] = forms.MultipleChoiceField(choices=choices.choices, required=False)
        for name, field in self.fields.items():
            field.label = TARGETING_LABELS.get(name, AMOUNT_LABELS.get(name, "Pricing"))


class LineItemCreateForm(LineItemForm):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.none())

    class Meta(LineItemForm.Meta):
        fields = ["campaign", *LineItemForm.Meta.fields]

    def __init__(self, *args, advertiser: Advertiser, **kwargs):
        super().__init__(*args, advertiser=advertiser, **kwargs)
        # Only this account's live campaigns: another account's id is "not one of the choices".
        self.fields["campaign"].queryset = selectors.campaign_list(advertiser=advertiser)


class CreativeForm(FieldsetsMixin, forms.ModelForm):
    """Edits a creative; its line item never changes after creation."""

    media_url = forms.URLField(
        max_length=500, assume_scheme="https", validators=[http_url], label="Media URL"
    )
    click_url = forms.URLField(
        max_length=500, assume_scheme="https", validators=[http_url], label="Click-through URL"
    )

    class Meta:
        model = Creative
        fields = ["name", "duration_seconds", "media_url", "click_url", "category"]

    fieldset_layout = [
        (
            "Creative",
            ["line_item", "name", "duration_seconds", "media_url", "click_url", "category"],
        )
    ]


class CreativeCreateForm(CreativeForm):
    line_item = forms.ModelChoiceField(queryset=LineItem.objects.none())

    class Meta(CreativeForm.Meta):
        fields = ["line_item", *CreativeForm.Meta.fields]

    def __init__(self, *args, advertiser: Advertiser, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this account's live line items, named with their campaign so they are told apart.
        field = self.fields["line_item"]
        field.queryset = selectors.line_item_list(advertiser=advertiser)
        field.label_from_instance = lambda line_item: f"{line_item.campaign} › {line_item}"


class AccountKeyForm(forms.ModelForm):
    class Meta:
        model = AccountKey
        fields = ["name", "scope"]
        help_texts = {
            "name": "What uses it, e.g. “Reporting warehouse”.",
            "scope": "Read: reports and lists. Read and write: also create and change campaigns.",
        }
        widgets = {"scope": forms.RadioSelect}
