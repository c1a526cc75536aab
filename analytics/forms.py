"""The Analytics filters: which days, stores, fulfillment type and customers. Every value
comes from the URL (so a view can be shared), so every bad value gets a plain message."""

from __future__ import annotations

import datetime as dt

from django import forms

from loyalty.models import Fulfillment

from .selectors import Filters, Period

RANGES = [
    ("today", "Today"),
    ("week", "This week"),
    ("month", "This month"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("12m", "Last 12 months"),
    ("custom", "Custom dates"),
]
DEFAULT_RANGE = "30d"
PRESET_DAYS = {"today": 1, "7d": 7, "30d": 30, "90d": 90}
LONGEST_DAYS = 3 * 366
EARLIEST = dt.date(2000, 1, 1)


def year_before(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def preset_period(preset: str, today: dt.date) -> Period:
    if preset == "week":  # from Monday
        return Period(today - dt.timedelta(days=today.weekday()), today)
    if preset == "month":
        return Period(today.replace(day=1), today)
    if preset == "12m":
        return Period(year_before(today) + dt.timedelta(days=1), today)
    return Period(today - dt.timedelta(days=PRESET_DAYS[preset] - 1), today)


def comparison(preset: str, period: Period, now: dt.datetime) -> tuple[Period, dt.datetime | None]:
    """What `period` is compared with: the same number of days just before ("This month":
    last month from its first day). A period that ends today is still going on: it is
    compared with the previous one up to the same point, `now`'s time on its last day
    (yesterday to 12:00, last week to the same weekday and time, last month to the same
    day and time); that moment is returned with the period."""
    if preset == "month":
        last_of_before = period.start - dt.timedelta(days=1)
        first = last_of_before.replace(day=1)
        if period.end.day > last_of_before.day:  # March 31st against February: all of it
            return Period(first, last_of_before), None
        previous = Period(first, first.replace(day=period.end.day))
    elif preset == "week":
        previous = Period(period.start - dt.timedelta(days=7), period.end - dt.timedelta(days=7))
    else:
        previous = period.previous()
    if period.end != now.date():
        return previous, None
    return previous, dt.datetime.combine(previous.end, now.time(), tzinfo=now.tzinfo)


class AnalyticsFilterForm(forms.Form):
    range = forms.ChoiceField(label="Dates", choices=RANGES, required=False, error_messages={
        "invalid_choice": "“%(value)s” is not a date range: pick one from the list."})
    start = forms.DateField(label="From", required=False, input_formats=["%Y-%m-%d"], error_messages={
        "invalid": "The start date is not a date: use the form 2026-01-31."})
    end = forms.DateField(label="To", required=False, input_formats=["%Y-%m-%d"], error_messages={
        "invalid": "The end date is not a date: use the form 2026-01-31."})
    store = forms.MultipleChoiceField(label="Stores", required=False, error_messages={
        "invalid_choice": "Store “%(value)s” is not one of your stores."})
    fulfillment = forms.ChoiceField(
        label="Fulfillment", required=False, choices=[("", "All fulfillment types"), *Fulfillment.choices],
        error_messages={"invalid_choice": "“%(value)s” is not a fulfillment type."})
    customers = forms.ChoiceField(
        label="Customers", required=False,
        choices=[("", "All customers"), ("members", "Loyalty members"), ("others", "Everyone else")],
        error_messages={"invalid_choice": "“%(value)s” is not a group of customers."})

    def __init__(self, data, *, stores: dict[int, str], now: dt.datetime):
        """`stores`: the company's stores by id (`selectors.store_names`); `now` on the
        company's clock."""
        super().__init__(data)
        self.now, self.today = now, now.date()
        self.fields["store"].choices = [(str(pk), name) for pk, name in stores.items()]

    def clean(self):
        cleaned = super().clean()
        preset = cleaned.get("range") or DEFAULT_RANGE
        cleaned["range"] = preset
        if preset != "custom":
            if "range" not in self.errors:
                cleaned["period"] = preset_period(preset, self.today)
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        if "start" in self.errors or "end" in self.errors:
            return cleaned
        if start is None or end is None:
            raise forms.ValidationError("Custom dates need both a start and an end date.")
        if end < start:
            raise forms.ValidationError(f"The end date ({end:%b %-d, %Y}) is before the start date "
                                        f"({start:%b %-d, %Y}).")
        if start < EARLIEST:
            raise forms.ValidationError(f"The start date is before {EARLIEST.year}: there are no sales then.")
        if (end - start).days + 1 > LONGEST_DAYS:
            raise forms.ValidationError("Pick at most three years at a time.")
        cleaned["period"] = Period(start, end)
        return cleaned

    def filters(self) -> Filters:
        data = self.cleaned_data
        previous, until = comparison(data["range"], data["period"], self.now)
        return Filters(period=data["period"], store_ids=tuple(sorted(int(s) for s in data["store"])),
                       fulfillment=data["fulfillment"], customers=data["customers"],
                       previous_period=previous, previous_until=until)

    def messages(self) -> list[str]:
        """Every problem, in words, for the top of the page."""
        return [message for errors in self.errors.values() for message in errors]
